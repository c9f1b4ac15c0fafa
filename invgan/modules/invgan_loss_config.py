"""Weights and options of the InvGAN objective (paper Eq. 3), validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from invgan.losses.adversarial import ADVERSARIAL_KINDS
from invgan.losses.reconstruction import DISTANCES
from invgan.utils.config_checks import ConfigValueError, check_arguments


@dataclass(frozen=True)
class InvGANLossConfig:
    """Loss weights and options; an unusable value fails at construction, naming its key."""

    adversarial: str = "non_saturating"
    adversarial_weight: float = 1.0
    # Whether reconstructions G(D(x)) count as fakes in the adversarial losses (the paper feeds
    # G the whole batch w + w_R). Near-copies of the real batch as fakes can hold D at chance
    # on small backbones; then set false so D judges prior samples only.
    adversarial_on_reconstructions: bool = True
    latent_weight: float = 1.0
    cycle_weight: float = 1.0
    feature_matching_weight: float = 1.0
    feature_distance: str = "l1"
    pixel_weight: float = 0.0
    pixel_distance: str = "l1"
    mmd_weight: float = 1.0
    mmd_bandwidths: tuple[float, ...] = field(default=(0.2, 0.5, 1.0, 2.0, 5.0))
    r1_gamma: float = 0.0
    r1_interval: int = 16

    def __post_init__(self) -> None:
        # The same rules as `check_config`, for losses built without a config.
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        check_arguments("model.loss", type(self), values)
        if self.adversarial not in ADVERSARIAL_KINDS:
            raise ConfigValueError(
                f"model.loss.adversarial={self.adversarial!r}; allowed: {ADVERSARIAL_KINDS}"
            )
        for name in ("feature_distance", "pixel_distance"):
            if getattr(self, name) not in DISTANCES:
                raise ConfigValueError(
                    f"model.loss.{name}={getattr(self, name)!r}; allowed: {DISTANCES}"
                )
        object.__setattr__(self, "mmd_bandwidths", tuple(float(b) for b in self.mmd_bandwidths))
