"""The one place where images change value range: datasets give [0, 1], networks use [-1, 1]."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torchvision.utils import make_grid, save_image


def batch_images(batch: Any) -> torch.Tensor:
    """The images of a datamodule batch: the batch itself, or its first element when the
    datamodule yields (images, labels)."""
    return batch[0] if isinstance(batch, list | tuple) else batch


def to_signed_range(images: torch.Tensor) -> torch.Tensor:
    """Map images from [0, 1] (datasets) to [-1, 1] (networks, losses, metrics)."""
    return images * 2.0 - 1.0


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Map images from [-1, 1] to [0, 1] for saving, clamping generator overshoot."""
    return ((images + 1.0) / 2.0).clamp(0.0, 1.0)


def image_grid(images: torch.Tensor, nrow: int = 8) -> torch.Tensor:
    """A (C, H, W) grid in [0, 1] of [-1, 1] images, `nrow` images per row, 2 px padding."""
    return make_grid(to_unit_range(images.detach().float().cpu()), nrow=nrow, padding=2)


def save_image_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> Path:
    """Save [-1, 1] images as one PNG grid (folders created); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(image_grid(images, nrow), path)
    return path


def save_images(images: torch.Tensor, folder: Path, prefix: str) -> list[Path]:
    """Save each [-1, 1] image as `<folder>/<prefix>_NNNNN.png`; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(images):
        path = folder / f"{prefix}_{index:05d}.png"
        save_image(to_unit_range(image.detach().float().cpu()), path)
        paths.append(path)
    return paths
