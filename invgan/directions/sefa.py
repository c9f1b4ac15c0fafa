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
from typing import Any, cast

import torch
from torch import nn

from invgan.directions.latent_directions import LatentDirections
from invgan.inversion.protocols import InversionMethod
from invgan.nn.biggan.generator import BigGANGenerator
from invgan.nn.dcgan import DCGANGenerator
from invgan.nn.stylegan2.equalized import EqualLinear
from invgan.nn.stylegan2.generator import StyleGAN2Generator

BACKBONES = (DCGANGenerator, StyleGAN2Generator, BigGANGenerator)


def style_affines(generator: StyleGAN2Generator, layer: int) -> list[EqualLinear]:
    """The style affines that W+ layer `layer` drives (see `StyleGAN2Generator`'s docstring:
    0 -> conv1, 1 -> to_rgb1 and convs[0], then 2k -> convs[2k - 1], 2k + 1 -> to_rgbs[k - 1]
    and convs[2k], the to-image layer sharing its code with the next block's first conv)."""
    if not 0 <= layer < generator.n_latent:
        raise ValueError(
            f"SeFa layer {layer} does not exist: the StyleGAN2 generator has W+ layers "
            f"0..{generator.n_latent - 1}"
        )
    # nn.ModuleList items are typed as plain modules; these are ModulatedConv2d layers.
    modules: list[Any]
    if layer == 0:
        modules = [generator.conv1.conv]
    elif layer == 1:
        modules = [generator.to_rgb1.conv, generator.convs[0].conv]
    elif layer % 2 == 0:
        modules = [generator.convs[layer - 1].conv]
    else:
        modules = [generator.to_rgbs[(layer - 3) // 2].conv]
        if layer - 1 < len(generator.convs):
            modules.append(generator.convs[layer - 1].conv)
    return [module.modulation for module in modules]


def _equal_linear_weight(layer: EqualLinear) -> torch.Tensor:
    """The weight an EqualLinear applies at run time (stored weight times its scale)."""
    return layer.weight * layer.scale


def _dcgan_weight(generator: DCGANGenerator) -> torch.Tensor:
    """The projection's weight with its eval-mode batch-norm scale folded in."""
    linear = cast(nn.Linear, generator.project[0])
    norm = cast(nn.BatchNorm1d, generator.project[1])
    running_var = cast(torch.Tensor, norm.running_var)  # typed optional; DCGAN's norm tracks it
    scale = norm.weight / torch.sqrt(running_var + norm.eps)
    return scale[:, None] * linear.weight


def first_layer_weight(generator: nn.Module, layers: Sequence[int] | None = None) -> torch.Tensor:
    """A (units, w_dim): the weight of the first affine map applied to the code.

    `layers` picks StyleGAN2's W+ layers (None: all); other backbones take one code and no
    layers.
    """
    if isinstance(generator, StyleGAN2Generator):
        chosen = range(generator.n_latent) if layers is None else layers
        affines = [affine for layer in chosen for affine in style_affines(generator, layer)]
        return torch.cat([_equal_linear_weight(affine) for affine in affines])
    if layers is not None:
        raise ValueError(
            f"layers={list(layers)} only applies to StyleGAN2 (W+ codes); "
            f"{type(generator).__name__} takes one code: leave layers=null"
        )
    if isinstance(generator, DCGANGenerator):
        return _dcgan_weight(generator)
    if isinstance(generator, BigGANGenerator):
        return generator.project.weight  # the spectrally normalised weight
    names = ", ".join(backbone.__name__ for backbone in BACKBONES)
    raise ValueError(f"SeFa supports {names}; got {type(generator).__name__}")


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
