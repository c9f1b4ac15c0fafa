"""Inpainting (InvGAN paper, Section 4.2 and Figure 2): a region of each image is zeroed and
the damaged image is (a) reconstructed by the inversion method, as the paper repairs images
with its encoder, and (b) inverted on its known pixels only (masked inversion, `encode_masked`
of the methods that offer it, `invgan.inversion.protocols.MaskedInversion`: the optimisation
methods), so that the hole's content cannot pull the code; the generator then fills the hole
from its prior. The composite keeps the known pixels and takes the hole from (b), or from (a)
when the method has no masked inversion.

The region is a box [top, left, height, width] in pixels, or for each image a square of side
`hole_size` at a random position (seeded). "Zeroing" is taken literally in the networks'
[-1, 1] range (mid grey); `fill` sets another value, e.g. -1 for black.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from invgan.applications.editing import check_whole_images, invert, save_codes, save_rows
from invgan.inversion.protocols import InversionMethod, MaskedInversion

log = logging.getLogger(__name__)


def _box_corners(box: Sequence[int], count: int, size: int) -> tuple[torch.Tensor, int, int]:
    """Top-left corners (count, 2), height and width of one fixed box."""
    if len(box) != 4:
        raise ValueError(f"inpainting box must be [top, left, height, width], got {list(box)}")
    top, left, height, width = (int(v) for v in box)
    if min(top, left) < 0 or min(height, width) < 1 or top + height > size or left + width > size:
        raise ValueError(
            f"inpainting box {list(box)} does not lie inside the {size}x{size} image: keep "
            f"top + height and left + width <= {size}, height and width >= 1"
        )
    if height * width == size * size:
        raise ValueError(f"inpainting box {list(box)} covers the whole image: nothing is known")
    return torch.tensor([[top, left]]).expand(count, 2), height, width


def hole_masks(
    count: int, size: int, box: Sequence[int] | None = None, hole_size: int = 10, seed: int = 0
) -> torch.Tensor:
    """Masks (count, 1, size, size): 0 in the hole, 1 on known pixels.

    The hole is `box` = [top, left, height, width] for every image, or with box None a
    hole_size x hole_size square per image at a uniformly random position (seeded).
    """
    if box is not None:
        corners, height, width = _box_corners(box, count, size)
    else:
        if not 0 < hole_size < size:
            raise ValueError(
                f"inpainting hole_size={hole_size} must lie between 1 and {size - 1} pixels "
                f"for {size}x{size} images"
            )
        rng = torch.Generator().manual_seed(seed)
        corners = torch.randint(0, size - hole_size + 1, (count, 2), generator=rng)
        height = width = hole_size
    pixels = torch.arange(size)
    in_rows = (pixels >= corners[:, :1]) & (pixels < corners[:, :1] + height)
    in_cols = (pixels >= corners[:, 1:]) & (pixels < corners[:, 1:] + width)
    hole = in_rows[:, :, None] & in_cols[:, None, :]
    return (~hole).float()[:, None]


@torch.no_grad()
def masked_inversion(
    method: MaskedInversion, images: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes fitted to the known pixels (mask 1) only, and their images."""
    codes = method.encode_masked(images, mask)
    return codes, method.decode(codes)


def run_inpainting(
    method: InversionMethod,
    images: torch.Tensor,
    resolution: int,
    output_dir: Path,
    box: Sequence[int] | None = None,
    hole_size: int = 10,
    fill: float = 0.0,
    seed: int = 0,
) -> list[Path]:
    """Write `inpainting.png` (a row per image: original, damaged, repaired, [masked
    inversion], composite) and `inpainting_codes.pt` (codes, masks)."""
    check_whole_images(images, resolution)
    mask = hole_masks(images.shape[0], resolution, box, hole_size, seed).to(images)
    damaged = torch.where(mask > 0, images, torch.full_like(images, fill))
    repair_codes, repaired = invert(method, damaged)
    columns = [images, damaged, repaired]
    codes = {"repair": repair_codes, "mask": mask}
    filled = repaired
    if isinstance(method, MaskedInversion):
        codes["masked"], filled = masked_inversion(method, damaged, mask)
        columns.append(filled)
    else:
        log.warning(
            "masked inversion needs an optimisation method (inversion=optimization, hybrid or "
            "domain_regularized); %s gives the repaired column only, and the composite fills "
            "the hole from it",
            type(method).__name__,
        )
    columns.append(torch.where(mask > 0, images, filled))
    grid_path = save_rows(columns, output_dir / "inpainting.png")
    codes_path = save_codes(output_dir / "inpainting_codes.pt", **codes)
    return [grid_path, codes_path]
