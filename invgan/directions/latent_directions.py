"""Unit directions in a generator's latent space, how they were found, and moving codes along
them: x' = G(w + alpha * n) (InterFaceGAN, SeFa)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from invgan.checkpoints.safe_load import safe_torch_load
from invgan.nn.frozen_generator import FrozenGenerator

# Keys of a saved directions file (torch.save of a dict of tensors and plain data).
_FIELDS = ("vectors", "names", "method", "layers", "info")


@dataclass
class LatentDirections:
    """k unit directions, (k, w_dim) or, for W+ codes, (k, n_latent, w_dim).

    `layers` lists the W+ layers that a w-sized direction moves (SeFa on chosen StyleGAN2
    layers); None moves every layer. `info` records how the directions were found (held-out
    accuracy, eigenvalues, attribute, ...), plain data only so that files load with
    `weights_only=True`.
    """

    vectors: torch.Tensor
    names: list[str]
    method: str
    layers: list[int] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.vectors.ndim not in (2, 3) or len(self.names) != self.vectors.shape[0]:
            raise ValueError(
                f"expected k directions of shape (k, w_dim) or (k, n_latent, w_dim) and k "
                f"names, got vectors {tuple(self.vectors.shape)} and {len(self.names)} names"
            )
        if self.layers is not None and self.vectors.ndim == 3:
            raise ValueError("layers only apply to w-sized directions (k, w_dim), not W+ ones")

    @property
    def w_dim(self) -> int:
        """Size of one latent code w."""
        return int(self.vectors.shape[-1])

    def save(self, path: str | os.PathLike) -> Path:
        """torch.save the directions (reloaded by `load`, e.g. `direction=saved`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({name: getattr(self, name) for name in _FIELDS}, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> LatentDirections:
        """Directions saved by `save` (read with weights_only=True)."""
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"directions file {path} does not exist: give a directions.pt written by the "
                "attribute_editing application"
            )
        saved = safe_torch_load(path)
        if not isinstance(saved, dict) or not set(_FIELDS) <= set(saved):
            raise ValueError(f"{path} is not a directions file (a dict with {', '.join(_FIELDS)})")
        return cls(**{name: saved[name] for name in _FIELDS})

    def check_generator(self, generator: FrozenGenerator) -> None:
        """Refuse directions found for a generator of another latent size or depth."""
        if self.w_dim != generator.w_dim:
            raise ValueError(
                f"the directions have w_dim {self.w_dim} but the generator's w_dim is "
                f"{generator.w_dim}: they were found for another generator"
            )
        if self.vectors.ndim == 3 and self.vectors.shape[1] != generator.n_latent:
            raise ValueError(
                f"the directions have {self.vectors.shape[1]} W+ layers but the generator has "
                f"{generator.n_latent}: they were found for another generator"
            )
        bad = [layer for layer in self.layers or [] if not 0 <= layer < generator.n_latent]
        if bad:
            raise ValueError(
                f"direction layers {bad} do not exist: the generator has W+ layers "
                f"0..{generator.n_latent - 1}"
            )


def move_codes(
    codes: torch.Tensor,
    direction: torch.Tensor,
    alpha: float,
    generator: FrozenGenerator,
    layers: list[int] | None = None,
) -> torch.Tensor:
    """codes + alpha * direction, on the W+ `layers` only when given.

    codes are w (N, w_dim) or W+ (N, n_latent, w_dim); a w-sized direction moves every layer of
    W+ codes alike. Codes become W+ when only some layers move or the direction is W+.
    """
    if layers is not None or direction.ndim == 2:
        codes = generator.expand_to_codes(codes)
    step = alpha * direction.to(codes)
    if layers is None:
        return codes + step
    moved = codes.clone()
    moved[:, layers] += step
    return moved


@torch.no_grad()
def prior_spread(
    directions: LatentDirections, generator: FrozenGenerator, samples: int = 10_000, seed: int = 0
) -> torch.Tensor:
    """Per direction, the standard deviation of <w, n> over prior codes w = M(z): the unit in
    which alpha sweeps are given, so one sweep suits generators of any latent scale."""
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(samples, generator.z_dim, generator=rng).to(generator.latent_avg.device)
    w = generator.map(z)
    vectors = directions.vectors.to(w)
    if vectors.ndim == 3:
        w = generator.expand_to_codes(w)
    return (w.flatten(1) @ vectors.flatten(1).T).std(dim=0).cpu()
