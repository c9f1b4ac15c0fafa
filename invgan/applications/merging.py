"""Image merging (InvGAN paper, Section 4.2 and Figure 2): the left part of one image beside
the right part of another, reconstructed, so that the generator's prior blends the seam.

Images are paired 1-2, 3-4, ... (file-name order): columns [0, split * W) come from the first
image of a pair, the rest from the second.
"""

from __future__ import annotations

from pathlib import Path

import torch

from invgan.applications.editing import (
    check_whole_images,
    invert,
    pairs,
    save_codes,
    save_rows,
)
from invgan.inversion.protocols import InversionMethod


def compose_halves(left: torch.Tensor, right: torch.Tensor, split: float = 0.5) -> torch.Tensor:
    """Columns [0, round(split * W)) of `left` beside the remaining columns of `right`."""
    width = left.shape[-1]
    column = round(split * width)
    if not 0 < column < width:
        raise ValueError(
            f"merging split={split} puts the seam at column {column} of {width}: both images "
            "need at least one column, so choose 0 < split < 1 (e.g. 0.5)"
        )
    return torch.cat([left[..., :column], right[..., column:]], dim=-1)


def run_merging(
    method: InversionMethod,
    images: torch.Tensor,
    resolution: int,
    output_dir: Path,
    split: float = 0.5,
) -> list[Path]:
    """Write `merging.png` (a row per pair: image 1, image 2, composite, its reconstruction)
    and `merging_codes.pt` (the composites' codes)."""
    check_whole_images(images, resolution)
    left, right = pairs(images)
    composite = compose_halves(left, right, split)
    codes, reconstruction = invert(method, composite)
    grid_path = save_rows([left, right, composite, reconstruction], output_dir / "merging.png")
    codes_path = save_codes(output_dir / "merging_codes.pt", codes=codes, split=split)
    return [grid_path, codes_path]
