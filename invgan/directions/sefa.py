"""SeFa (Shen & Zhou, "Closed-Form Factorization of Latent Semantics in GANs", CVPR 2021).

The first layer that takes the code is affine, y = A w + b, so moving w by alpha * n moves y by
alpha * A n whatever w is. The directions that move y most, argmax ||A n||^2 over unit n, are
the top eigenvectors of A^T A: the latent semantics, found from the weights alone, without
data or training.

A per backbone (`invgan/nn/`):
- DCGAN: the `project` Linear followed by its batch norm, which in eval mode is a per-unit
  scale and shift, hence part of the same affine map (its scale is folded into A);
- StyleGAN2: the style affines (modulation weights) of the chosen W+ layers, stacked; only
  those layers are then edited, as SeFa does for layer-wise semantics;
- BigGAN: the first linear on the code, `project`. Our BigGAN also feeds w to every block's
  conditional batch norm, but SeFa's BigGAN factorises the first layer only, so we do too.

`normalize_rows` divides each output unit's weights by their norm before A^T A, as the
authors' implementation does: every unit then counts once, whatever its weight scale, so one
layer's larger weights cannot outvote the others.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from invgan.directions.latent_directions import LatentDirections
from invgan.inversion.protocols import InversionMethod
from invgan.nn.code_affine import CodeAffineGenerator


def first_layer_weight(generator: nn.Module, layers: Sequence[int] | None = None) -> torch.Tensor:
    """A (units, w_dim): the weight of the first affine map applied to the code.

    `layers` picks StyleGAN2's W+ layers (None: all); other backbones take one code and no
    layers.
    """
    if not isinstance(generator, CodeAffineGenerator):
        raise ValueError(
            f"SeFa needs the generator's first affine map on the code; "
            f"{type(generator).__name__} has no `code_affine_weight` (the project's DCGAN, "
            "StyleGAN2 and BigGAN generators have one)"
        )
    return generator.code_affine_weight(layers)


def sefa_directions(
    weight: torch.Tensor, num_components: int, normalize_rows: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The top `num_components` eigenvectors of A^T A (rows, unit, largest eigenvalue first)
    and their eigenvalues. Each vector's sign puts its largest-magnitude entry positive (an
    eigenvector's sign is arbitrary; this makes it reproducible)."""
    if not 1 <= num_components <= weight.shape[1]:
        raise ValueError(
            f"num_components must be between 1 and w_dim = {weight.shape[1]}, got {num_components}"
        )
    a = weight.detach().double()
    if normalize_rows:
        a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    eigenvalues, eigenvectors = torch.linalg.eigh(a.T @ a)  # ascending
    order = eigenvalues.argsort(descending=True)[:num_components]
    vectors = eigenvectors[:, order].T
    largest = vectors.gather(1, vectors.abs().argmax(dim=1, keepdim=True))
    vectors = vectors * largest.sign()
    return vectors.to(weight.dtype), eigenvalues[order].to(weight.dtype)


class SeFa:
    """Directions builder (`conf/application/direction/sefa.yaml`): SeFa's top components."""

    def __init__(
        self,
        num_components: int = 5,
        layers: Sequence[int] | None = None,
        normalize_rows: bool = True,
    ) -> None:
        self.num_components = num_components
        self.layers = None if layers is None else [int(layer) for layer in layers]
        self.normalize_rows = normalize_rows

    @torch.no_grad()
    def find(self, method: InversionMethod, channels: int, resolution: int) -> LatentDirections:
        """The generator's top components (SeFa needs no images: channels and resolution are
        unused)."""
        generator = method.frozen_generator()
        weight = first_layer_weight(generator.generator, self.layers)
        vectors, eigenvalues = sefa_directions(weight, self.num_components, self.normalize_rows)
        return LatentDirections(
            vectors=vectors.cpu(),
            names=[f"component_{k}" for k in range(self.num_components)],
            method="sefa",
            layers=self.layers,
            info={
                "eigenvalues": eigenvalues.tolist(),
                "backbone": type(generator.generator).__name__,
                "normalize_rows": self.normalize_rows,
            },
        )
