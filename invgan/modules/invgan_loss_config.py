"""Weights and options of the InvGAN objective (paper Eq. 3), validated on construction.

The defaults are those of conf/model/loss/invgan.yaml, the config group every InvGAN model
uses as `model.loss` (a test keeps the two the same).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from invgan.losses.adversarial import adversarial_kind_problem
from invgan.losses.reconstruction import distance_problem
from invgan.modules.validated_config import ValidatedConfig


@dataclass(frozen=True)
class InvGANLossConfig(ValidatedConfig):
    """Loss weights and options; an unusable value fails at construction, naming its key."""

    KEY = "model.loss"

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
        super().__post_init__()
        # A config gives a list; the frozen config holds a tuple of floats.
        object.__setattr__(self, "mmd_bandwidths", tuple(float(b) for b in self.mmd_bandwidths))

    def check(self) -> None:
        """The loss kinds, by the rules of the losses that use them."""
        self.refuse(adversarial_kind_problem(self.key("adversarial"), self.adversarial))
        for name, distance in (("feature", self.feature_distance), ("pixel", self.pixel_distance)):
            self.refuse(distance_problem(self.key(f"{name}_distance"), distance, name))
