"""Test images beside their reconstructions and the per-pixel error (InvGAN paper, Fig. 5)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from invgan.utils.images import save_image_grid


def difference_images(images: Tensor, reconstructions: Tensor, gain: float) -> Tensor:
    """|x - x_rec| averaged over channels as gray [-1, 1] images: black is exact, white is an
    error of 2 / gain (the whole [-1, 1] range at gain 1)."""
    error = (images - reconstructions).abs().mean(dim=1, keepdim=True) / 2.0
    gray = (error * gain).clamp(0.0, 1.0) * 2.0 - 1.0
    return gray.expand(-1, images.shape[1], -1, -1)


def save_reconstruction_grid(
    images: Tensor, reconstructions: Tensor, path: Path, gain: float
) -> Path:
    """Three rows: test images, their reconstructions, the amplified absolute difference."""
    rows = torch.cat([images, reconstructions, difference_images(images, reconstructions, gain)])
    return save_image_grid(rows.float().cpu(), path, nrow=images.shape[0])
