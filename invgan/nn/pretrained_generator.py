"""A pretrained generator file evaluated on its own: no encoder, so only optimisation-based
inversion applies (`python evaluate.py generator_path=<file> data=<dataset>
inversion=optimization`)."""

from __future__ import annotations

import torch

from invgan.nn.frozen_generator import FrozenGenerator


class PretrainedGenerator:
    """A generative model (`invgan.inversion.protocols.GenerativeModel`: `decode`, `sample`,
    `frozen_generator`) around a `FrozenGenerator` that has no encoder of its own; methods
    that need one (inversion=encoder, hybrid) say so when asked to encode."""

    iteration = 0
    inversion_networks = "none"
    sampling_networks = "pretrained"

    def __init__(self, generator: FrozenGenerator) -> None:
        self.generator = generator

    def to(self, device: torch.device) -> PretrainedGenerator:
        """Move the generator to `device`."""
        self.generator.to(device)
        return self

    @property
    def device(self) -> torch.device:
        """Where the generator's weights are."""
        return self.generator.latent_avg.device

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from w or W+ codes."""
        return self.generator.synthesize(codes)

    def sample(self, count: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """`count` random images G(M(z))."""
        z = torch.randn(count, self.generator.z_dim, generator=generator, device=self.device)
        return self.generator.sample(z)

    def frozen_generator(self) -> FrozenGenerator:
        """The generator codes are optimised for."""
        return self.generator
