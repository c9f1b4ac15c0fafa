"""A pretrained generator held fixed while encoders or latent codes are fitted to it."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from invgan.nn.split import SplitGenerator


def _size(network: nn.Module, name: str) -> int:
    """An integer hyperparameter of `network` (w_dim, resolution, ...), read by name: nn.Module
    types every attribute it does not declare as a tensor or a submodule, which these are not."""
    return int(getattr(network, name))


class FrozenGenerator(nn.Module):
    """Mapping network M, generator G and the average latent, never trained.

    Every parameter has `requires_grad=False` and the networks stay in eval mode whatever
    `train()` is called with (fixed noise maps, batch-norm running statistics), so gradients
    reach latent codes and encoders but never the generator. `mapping=None` means the
    generator owns its mapping network (`generator.mapping`, StyleGAN2).

    Codes are w (N, w_dim) or, for generators with one style input per layer (`n_latent` > 1),
    W+ (N, n_latent, w_dim). `architecture` is the Hydra config that rebuilds the networks
    without the file they were loaded from, so that checkpoints holding this module are
    self-contained (see `invgan.checkpoints.generator_import`).
    State dict: `generator.*`, `mapping_network.*` (standalone mapping only), `latent_avg`.
    """

    latent_avg: torch.Tensor  # a buffer (nn.Module's attribute lookup would type it loosely)

    def __init__(
        self,
        generator: nn.Module,
        mapping: nn.Module | None = None,
        architecture: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.generator = generator
        self.owns_mapping = mapping is None
        if mapping is not None:
            self.mapping_network = mapping
        elif not isinstance(getattr(generator, "mapping", None), nn.Module):
            raise ValueError("the generator has no mapping network of its own; pass `mapping`")
        if self.mapping.w_dim != generator.w_dim:
            raise ValueError(
                f"mapping w_dim={self.mapping.w_dim} differs from generator w_dim="
                f"{generator.w_dim}"
            )
        self.architecture = architecture
        self.register_buffer("latent_avg", torch.zeros(_size(generator, "w_dim")))
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenGenerator:
        """Stay in eval mode: the generator is fixed, including its normalisation and noise."""
        return super().train(False)

    @property
    def mapping(self) -> nn.Module:
        """The mapping network M: z (N, z_dim) -> w (N, w_dim)."""
        if self.owns_mapping:
            # Checked to be a module at construction; nn.Module types it as tensor or module.
            return cast(nn.Module, self.generator.mapping)
        return self.mapping_network

    @property
    def w_dim(self) -> int:
        """Size of one latent code w."""
        return _size(self.generator, "w_dim")

    @property
    def z_dim(self) -> int:
        """Size of a prior sample z."""
        return _size(self.mapping, "z_dim")

    @property
    def n_latent(self) -> int:
        """Style inputs per image: W+ codes are (N, n_latent, w_dim); 1 means w only."""
        return int(getattr(self.generator, "n_latent", 1))

    @property
    def resolution(self) -> int:
        """Side of the generated images in pixels."""
        return _size(self.generator, "resolution")

    @property
    def channels(self) -> int:
        """Channels of the generated images."""
        return _size(self.generator, "channels")

    @property
    def has_noise_inputs(self) -> bool:
        """Whether the generator takes per-layer noise maps (StyleGAN2)."""
        return hasattr(self.generator, "noises")

    def noise_maps(self) -> list[torch.Tensor]:
        """The generator's stored noise maps, one per layer (empty without noise inputs)."""
        if not self.has_noise_inputs:
            return []
        return [
            getattr(self.generator.noises, f"noise_{i}")
            for i in range(_size(self.generator, "num_layers"))
        ]

    def map(self, z: torch.Tensor) -> torch.Tensor:
        """w = M(z) for prior samples z (N, z_dim)."""
        return self.mapping(z)

    def _backbone_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes as the backbone takes them: W+ with one layer becomes w for w-only ones."""
        if codes.ndim == 3 and self.n_latent == 1:
            if codes.shape[1] != 1:
                raise ValueError(
                    f"this generator takes one code per image (w of shape (N, {self.w_dim})); "
                    f"got W+ codes {tuple(codes.shape)}"
                )
            return codes[:, 0]
        return codes

    def synthesize(
        self, codes: torch.Tensor, noise: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Images in [-1, 1] from w (N, w_dim) or W+ (N, n_latent, w_dim) codes.

        `noise` replaces the stored noise maps (optimisation-based inversion fits them too).
        """
        codes = self._backbone_codes(codes)
        if noise is None:
            return self.generator(codes)
        return self.generator(codes, noise=noise)

    def _split_backbone(self) -> SplitGenerator:
        """The generator, if it can be split into G1 and G2 (`invgan.nn.split`)."""
        if not hasattr(self.generator, "split_layers"):
            raise ValueError(
                f"{type(self.generator).__name__} cannot be split into G1 and G2 (no head/tail "
                "methods); multi-code inversion needs a DCGAN, StyleGAN2 or BigGAN generator"
            )
        return cast(SplitGenerator, self.generator)

    @property
    def split_layers(self) -> int:
        """Valid split layers l of `features` / `synthesize_from` are 1..split_layers."""
        return int(self._split_backbone().split_layers)

    def features(self, codes: torch.Tensor, layer: int) -> torch.Tensor:
        """G1_layer(codes): the intermediate state (N, C, H, W) after `layer` split points
        (StyleGAN2: its features with the image so far as the last channels)."""
        return self._split_backbone().head(self._backbone_codes(codes), layer)

    def synthesize_from(
        self, features: torch.Tensor, codes: torch.Tensor, layer: int
    ) -> torch.Tensor:
        """G2_layer(features, codes): images in [-1, 1]; codes style the layers after the
        split (StyleGAN2, BigGAN), and synthesize_from(features(c, l), c, l) = synthesize(c)."""
        return self._split_backbone().tail(features, self._backbone_codes(codes), layer)

    def sample(self, z: torch.Tensor) -> torch.Tensor:
        """Random images G(M(z))."""
        return self.synthesize(self.map(z))

    @torch.no_grad()
    def estimate_latent_avg(self, num_samples: int = 10_000, seed: int = 0) -> torch.Tensor:
        """Set `latent_avg` to the mean of M(z) over `num_samples` seeded prior samples."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        rng = torch.Generator().manual_seed(seed)
        total = torch.zeros(self.w_dim, dtype=torch.float64)
        for start in range(0, num_samples, 1024):
            count = min(1024, num_samples - start)
            z = torch.randn(count, self.z_dim, generator=rng).to(self.latent_avg.device)
            total += self.map(z).double().sum(dim=0).cpu()
        self.latent_avg.copy_((total / num_samples).to(self.latent_avg))
        return self.latent_avg

    def expand_to_codes(self, w: torch.Tensor) -> torch.Tensor:
        """W+ codes (N, n_latent, w_dim) from w (N, w_dim); W+ input is returned as it is."""
        if w.ndim == 3:
            return w
        return w.unsqueeze(1).expand(-1, self.n_latent, -1)
