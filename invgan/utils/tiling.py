"""Cutting images into a grid of square patches and putting them back, for tiled inversion.

Patches are ordered image by image, then row by row (row-major), so patch ``k`` of image ``i``
sits at ``i * rows * cols + k`` and at grid position ``divmod(k, cols)``.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F


class PatchGrid(NamedTuple):
    """How images were cut: ``rows`` x ``cols`` patches covering ``height`` x ``width`` pixels."""

    rows: int
    cols: int
    height: int
    width: int


def image_to_patches(images: torch.Tensor, patch_size: int) -> tuple[torch.Tensor, PatchGrid]:
    """Cut (N, C, H, W) images into (N * rows * cols, C, m, m) patches, m = ``patch_size``.

    Sides that are not a multiple of m are first padded at the bottom and right by reflection
    (so padding continues the image instead of adding a dark border the model never saw); the
    returned grid lets :func:`patches_to_image` crop the padding off again.
    """
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
    if patch_size < 1:
        raise ValueError(f"patch_size must be >= 1, got {patch_size}")
    num, channels, height, width = images.shape
    rows, cols = -(-height // patch_size), -(-width // patch_size)  # ceiling division
    pad_bottom, pad_right = rows * patch_size - height, cols * patch_size - width
    if pad_bottom >= height or pad_right >= width:
        # Reflection cannot pad by as much as the side it mirrors.
        raise ValueError(
            f"images of {height}x{width} are too small to reflect-pad to a multiple of "
            f"{patch_size}; each side must exceed the padding it needs"
        )
    if pad_bottom or pad_right:
        images = F.pad(images, (0, pad_right, 0, pad_bottom), mode="reflect")
    patches = images.reshape(num, channels, rows, patch_size, cols, patch_size)
    patches = patches.permute(0, 2, 4, 1, 3, 5).reshape(-1, channels, patch_size, patch_size)
    return patches, PatchGrid(rows, cols, height, width)


def patches_to_image(patches: torch.Tensor, grid: PatchGrid | int) -> torch.Tensor:
    """Reassemble patches from :func:`image_to_patches` into (N, C, H, W) images.

    ``grid`` is the :class:`PatchGrid` that :func:`image_to_patches` returned (the padding is
    cropped off), or an int n for an n x n grid without padding.
    """
    if patches.ndim != 4 or patches.shape[-1] != patches.shape[-2]:
        raise ValueError(f"expected square patches (P, C, m, m), got {tuple(patches.shape)}")
    channels, patch_size = patches.shape[1], patches.shape[-1]
    if isinstance(grid, int):
        grid = PatchGrid(grid, grid, grid * patch_size, grid * patch_size)
    per_image = grid.rows * grid.cols
    if len(patches) % per_image:
        raise ValueError(f"{len(patches)} patches do not fill whole {grid.rows}x{grid.cols} grids")
    images = patches.reshape(-1, grid.rows, grid.cols, channels, patch_size, patch_size)
    images = images.permute(0, 3, 1, 4, 2, 5)
    images = images.reshape(-1, channels, grid.rows * patch_size, grid.cols * patch_size)
    return images[..., : grid.height, : grid.width]
