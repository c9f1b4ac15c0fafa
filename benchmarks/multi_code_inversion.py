"""The comparison figure of benchmarks/multi_code_inversion.sh: real faces, then one row of
reconstructions per method, cut from each evaluation's reconstructions.png.

Usage: python benchmarks/multi_code_inversion.py <out_dir> <method> [method ...] [--count N]
Each method is a folder `<out_dir>/eval/<method>/` holding evaluate.py's reconstructions.png
(rows: test images, reconstructions, differences; every method saw the same test images).
Writes docs/images/applications/multi_code.png: row 0 the real faces, row k method k.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.io import read_image
from torchvision.utils import save_image

FIGURE = Path(__file__).resolve().parents[1] / "docs" / "images" / "applications"
PADDING = 2  # invgan.utils.images.image_grid's padding


def grid_row(grid: torch.Tensor, row: int, side: int, count: int) -> torch.Tensor:
    """The first `count` images (count, C, side, side) of row `row` of a padded grid."""
    top = PADDING + row * (side + PADDING)
    lefts = [PADDING + column * (side + PADDING) for column in range(count)]
    return torch.stack([grid[:, top : top + side, left : left + side] for left in lefts])


def main(out_dir: Path, methods: list[str], count: int, side: int) -> Path:
    """Stack the real row of the first method's grid and each method's reconstruction row."""
    grids = [read_image(str(out_dir / "eval" / m / "reconstructions.png")) for m in methods]
    rows = [grid_row(grids[0], 0, side, count)]
    rows += [grid_row(grid, 1, side, count) for grid in grids]
    FIGURE.mkdir(parents=True, exist_ok=True)
    path = FIGURE / "multi_code.png"
    save_image(torch.cat(rows).float() / 255, path, nrow=count, padding=PADDING)
    print(f"wrote {path}: rows real, {', '.join(methods)}")
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("methods", nargs="+")
    parser.add_argument("--count", type=int, default=8, help="faces per row")
    parser.add_argument("--side", type=int, default=32, help="image side in pixels")
    arguments = parser.parse_args()
    main(arguments.out_dir, arguments.methods, arguments.count, arguments.side)
