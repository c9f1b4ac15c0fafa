"""Tiled inversion (InvGAN paper, Sections 3.3 and 4.3): an image larger than the generator's
output is cut into m x m patches, each patch is inverted on its own, and the reconstruction is
the patches' regenerations tiled back together. The patches of all images go through the
encoder and the generator in one batch each.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from invgan.inversion.protocols import Invertible
from invgan.utils.tiling import PatchGrid, image_to_patches, patches_to_image


class TiledLatents(NamedTuple):
    """One latent code per patch: (N, rows, cols, *code shape), and how the images were cut."""

    codes: torch.Tensor
    grid: PatchGrid


@torch.no_grad()
def invert_tiled(model: Invertible, images: torch.Tensor, patch_size: int) -> TiledLatents:
    """Invert (N, C, H, W) images in [-1, 1] patch by patch (sides need not divide by m)."""
    patches, grid = image_to_patches(images, patch_size)
    codes = model.encode(patches)
    return TiledLatents(
        codes.reshape(images.shape[0], grid.rows, grid.cols, *codes.shape[1:]), grid
    )


@torch.no_grad()
def decode_tiled(model: Invertible, latents: TiledLatents) -> torch.Tensor:
    """Generate every patch from its code and tile the patches into (N, C, H, W) images."""
    codes = latents.codes.flatten(0, 2)
    return patches_to_image(model.decode(codes), latents.grid)


def reconstruct_tiled(model: Invertible, images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Tiled reconstruction of (N, C, H, W) images in [-1, 1]: decode(invert(x)), same size."""
    return decode_tiled(model, invert_tiled(model, images, patch_size))
