"""The spaces in which optimisation-based inversion searches: Z, W, W+, P and P+.

Each space says how to start (the mean of the space, a random prior sample, or an encoder's
codes converted into it), how its variable becomes codes for the generator, and which prior
penalty it carries. Variables have one row per image, so images are optimised independently.

- z: prior samples, codes = M(z). The most constrained space; starts at z = 0, the mode.
- w: one w per image.
- w_plus: one w per generator layer (N, n_latent, w_dim), the most expressive space.
- p, p_plus: w with the mapping's last leaky ReLU undone (`invgan.inversion.p_space`), one
  code per image or per layer, with the P-norm penalty. Zhu et al. 2020 recommend P+ with the
  penalty (their P_N+); P alone is kept for comparison with W.
"""

from __future__ import annotations

import torch

from invgan.inversion.p_space import PNorm, p_to_w, w_to_p
from invgan.nn.frozen_generator import FrozenGenerator


def _prior_samples(generator: FrozenGenerator, count: int, rng: torch.Generator) -> torch.Tensor:
    """z ~ N(0, I) drawn on the CPU (the same numbers on every device)."""
    z = torch.randn(count, generator.z_dim, generator=rng)
    return z.to(generator.latent_avg.device)


class ZSpace:
    """Optimise z; codes = M(z)."""

    def __init__(self, generator: FrozenGenerator) -> None:
        self.generator = generator

    def initial(self, count: int, rng: torch.Generator | None = None) -> torch.Tensor:
        """z = 0 for every image, or prior samples when `rng` is given."""
        if rng is None:
            device = self.generator.latent_avg.device
            return torch.zeros(count, self.generator.z_dim, device=device)
        return _prior_samples(self.generator, count, rng)

    def from_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Refused: the mapping network has no inverse."""
        raise ValueError(
            "space z cannot start from an encoder's codes (the mapping network is not "
            "invertible); use init=mean or a w, w_plus, p or p_plus space"
        )

    def to_codes(self, variable: torch.Tensor) -> torch.Tensor:
        """w = M(z)."""
        return self.generator.map(variable)

    def penalty(self, variable: torch.Tensor) -> torch.Tensor | None:
        """No prior penalty in Z."""
        return None


class WSpace:
    """Optimise w directly: one code per image, or one per layer (`per_layer`, W+)."""

    def __init__(self, generator: FrozenGenerator, per_layer: bool = False) -> None:
        self.generator = generator
        self.per_layer = per_layer

    def _shaped(self, w: torch.Tensor) -> torch.Tensor:
        """w (N, w_dim) as this space's variable: repeated over layers for W+."""
        return self.generator.expand_to_codes(w).clone() if self.per_layer else w

    def initial(self, count: int, rng: torch.Generator | None = None) -> torch.Tensor:
        """The average latent for every image, or mapped prior samples when `rng` is given."""
        if rng is None:
            return self._shaped(self.generator.latent_avg.expand(count, -1).clone())
        return self._shaped(self.generator.map(_prior_samples(self.generator, count, rng)))

    def from_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """An encoder's w or W+ codes in this space (W+ averaged over layers for W)."""
        if self.per_layer:
            return self.generator.expand_to_codes(codes).clone()
        return codes.mean(dim=1) if codes.ndim == 3 else codes

    def to_codes(self, variable: torch.Tensor) -> torch.Tensor:
        """The variable is the code."""
        return variable

    def penalty(self, variable: torch.Tensor) -> torch.Tensor | None:
        """No prior penalty in W."""
        return None


class PSpace(WSpace):
    """Optimise x = LeakyReLU_5(w) per image or per layer; codes = LeakyReLU_0.2(x)."""

    def __init__(self, generator: FrozenGenerator, per_layer: bool = False) -> None:
        super().__init__(generator, per_layer)
        self.p_norm = PNorm.estimate(generator)

    def initial(self, count: int, rng: torch.Generator | None = None) -> torch.Tensor:
        """The mean of P for every image, or prior samples mapped into P when `rng` is given."""
        if rng is None:
            return self._shaped(self.p_norm.mean.expand(count, -1).clone())
        return w_to_p(super().initial(count, rng))

    def from_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """An encoder's w or W+ codes in P."""
        return w_to_p(super().from_codes(codes))

    def to_codes(self, variable: torch.Tensor) -> torch.Tensor:
        """w = LeakyReLU_0.2(x)."""
        return p_to_w(variable)

    def penalty(self, variable: torch.Tensor) -> torch.Tensor | None:
        """The P-norm: squared whitened distance from the mean of P, per image."""
        return self.p_norm(variable)


LatentSpace = ZSpace | WSpace
SPACES = ("z", "w", "w_plus", "p", "p_plus")


def build_space(name: str, generator: FrozenGenerator) -> LatentSpace:
    """The latent space called `name` (one of SPACES) of `generator`."""
    if name == "z":
        return ZSpace(generator)
    if name in ("w", "w_plus"):
        return WSpace(generator, per_layer=name == "w_plus")
    if name in ("p", "p_plus"):
        return PSpace(generator, per_layer=name == "p_plus")
    raise ValueError(f"inversion space {name!r}; choose one of {SPACES}")
