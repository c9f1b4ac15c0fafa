"""Images as the browser shows them: network outputs and cells of the applications' PNG grids
as 8-bit pictures, enlarged by a whole factor (nearest neighbour, so every shown pixel is one
of the image's), and interpolation strips as animated GIFs."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import save_image

from invgan.evaluation.reconstruction_grid import difference_images
from invgan.utils.images import to_unit_range

# save_image_grid's padding between and around grid cells, in pixels.
GRID_PADDING = 2
# White in an error map is an error of 2 / gain in [-1, 1] units, as in evaluate's grids.
ERROR_GAIN = 4.0


def to_picture(image: torch.Tensor) -> Image.Image:
    """One [-1, 1] image (C, H, W) as an 8-bit RGB or L picture, rounded as the PNG files
    that the applications write."""
    buffer = io.BytesIO()
    save_image(to_unit_range(image.detach().float().cpu()), buffer, format="png")
    buffer.seek(0)
    with Image.open(buffer) as picture:
        return picture.copy()


def error_map(image: torch.Tensor, reconstruction: torch.Tensor) -> Image.Image:
    """|x - x_rec| averaged over channels, black exact and white an error of 0.5."""
    return to_picture(difference_images(image[None], reconstruction[None], ERROR_GAIN)[0])


def enlargement(resolution: int, display_size: int) -> int:
    """The whole factor that brings `resolution` closest to `display_size` from below
    (at least 1)."""
    return max(1, display_size // resolution)


def enlarge(picture: Image.Image, factor: int) -> Image.Image:
    """The picture `factor` times larger, each pixel a factor x factor block."""
    if factor == 1:
        return picture
    width, height = picture.size
    return picture.resize((width * factor, height * factor), Image.Resampling.NEAREST)


def shrink(picture: Image.Image, factor: int) -> Image.Image:
    """Undo `enlarge`: one pixel of each factor x factor block."""
    if factor == 1:
        return picture
    width, height = picture.size
    return picture.resize((width // factor, height // factor), Image.Resampling.NEAREST)


def grid_cells(path: Path, resolution: int, columns: Sequence[int], row: int = 0) -> list:
    """Cells (row, c) for c in `columns` of a save_image_grid PNG of resolution-sized images."""
    step = resolution + GRID_PADDING
    with Image.open(path) as grid:
        grid.load()
        return [
            grid.crop(
                (
                    GRID_PADDING + c * step,
                    GRID_PADDING + row * step,
                    GRID_PADDING + c * step + resolution,
                    GRID_PADDING + row * step + resolution,
                )
            )
            for c in columns
        ]


def grid_columns(path: Path, resolution: int) -> int:
    """How many images a row of a save_image_grid PNG holds."""
    with Image.open(path) as grid:
        return (grid.size[0] - GRID_PADDING) // (resolution + GRID_PADDING)


def strip(pictures: Sequence[Image.Image]) -> Image.Image:
    """Pictures of one size side by side, no gaps."""
    width, height = pictures[0].size
    row = Image.new(pictures[0].mode, (width * len(pictures), height))
    for k, picture in enumerate(pictures):
        row.paste(picture, (k * width, 0))
    return row


def save_animation(pictures: Sequence[Image.Image], path: Path, frame_ms: int = 120) -> Path:
    """An endless GIF that runs through the pictures and back."""
    frames = list(pictures) + list(pictures[-2:0:-1])
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(
        path, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0, optimize=False
    )
    return path
