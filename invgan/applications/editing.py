"""What the whole-image editing applications (interpolation, style mixing, inpainting,
merging) share: checking and pairing the inputs, inverting them, the generator behind a
method, and writing the grid and the codes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from invgan.inversion.protocols import Invertible
from invgan.utils.images import save_image_grid


def check_whole_images(images: torch.Tensor, resolution: int) -> None:
    """Refuse inputs that are not resolution x resolution (the generator's own size)."""
    if tuple(images.shape[-2:]) != (resolution, resolution):
        raise ValueError(
            f"editing works on whole {resolution}x{resolution} images (the generator's "
            f"resolution), got {tuple(images.shape[-2:])}: leave size unset (size=null)"
        )


def pairs(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Items 1, 3, 5, ... and 2, 4, 6, ... of a batch: the pairs 1-2, 3-4, ... as two batches."""
    count = batch.shape[0]
    if count < 2 or count % 2:
        raise ValueError(
            f"this application works on pairs of images (1-2, 3-4, ... in file-name order), "
            f"got {count} image(s): give an even number of images"
        )
    return batch[0::2], batch[1::2]


@torch.no_grad()
def invert(method: Invertible, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The method's codes of the images and their reconstructions decode(codes).

    Reconstructions decode the codes alone (stored noise maps), as every edited code is
    decoded: noise maps that optimisation fits belong to one image and are not edited.
    """
    codes = method.encode(images)
    return codes, method.decode(codes)


def save_rows(columns: Sequence[torch.Tensor], path: Path) -> Path:
    """A PNG grid with one row per image and the (N, C, H, W) `columns` side by side."""
    rows = torch.stack(list(columns), dim=1).flatten(0, 1)
    return save_image_grid(rows, path, nrow=len(columns))


def save_codes(path: Path, **values: Any) -> Path:
    """torch.save the values as one dict, tensors moved to the CPU; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in values.items()}, path)
    return path
