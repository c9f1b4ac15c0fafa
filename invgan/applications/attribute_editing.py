"""Attribute editing along latent directions: x' = G(w* + alpha * n), w* the inverted code of a
real image, n a unit direction (InterFaceGAN, SeFa or a saved file), alpha swept.

Alphas are given in standard deviations of the prior codes w = M(z) along n (`alpha_unit:
prior_std`), so one sweep suits generators whose latent scales differ; `alpha_unit: latent`
takes them as they are. Decoding uses the generator's stored noise maps, as for every edit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch

from invgan.applications.editing import (
    check_whole_images,
    invert,
    save_codes,
    save_rows,
)
from invgan.checkpoints.atomic import atomic_write_json
from invgan.directions.latent_directions import LatentDirections, move_codes, prior_spread
from invgan.inversion.protocols import InversionMethod
from invgan.nn.frozen_generator import FrozenGenerator
from invgan.utils.images import save_image_grid

ALPHA_UNITS = ("prior_std", "latent")


class DirectionFinder(Protocol):
    """What `conf/application/direction/` builds (SeFa, InterFaceGAN, a saved file): directions
    in the latent space of a method's generator."""

    def find(self, method: InversionMethod, channels: int, resolution: int) -> LatentDirections:
        """Directions for `method`'s codes; `channels` and `resolution` are those of the images
        a finder that inverts labelled images reads."""
        ...


def file_stem(name: str) -> str:
    """A direction's name as a file-name part ("label in [1]" -> "label_in_1")."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or "direction"


@torch.no_grad()
def sweep(
    codes: torch.Tensor,
    directions: LatentDirections,
    index: int,
    steps: Sequence[float],
    generator: FrozenGenerator,
) -> torch.Tensor:
    """Images (N, len(steps), C, H, W): G(codes + step * n) for direction `index`."""
    vector = directions.vectors[index]
    return torch.stack(
        [
            generator.synthesize(move_codes(codes, vector, step, generator, directions.layers))
            for step in steps
        ],
        dim=1,
    )


def alpha_scales(
    unit: str, directions: LatentDirections, generator: FrozenGenerator
) -> torch.Tensor:
    """Per direction, the latent distance that alpha = 1 stands for."""
    if unit == "latent":
        return torch.ones(len(directions.names))
    return prior_spread(directions, generator)


def run_attribute_editing(
    method: InversionMethod,
    images: torch.Tensor,
    resolution: int,
    output_dir: Path,
    direction: DirectionFinder,
    alphas: Sequence[float] = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0),
    alpha_unit: str = "prior_std",
) -> list[Path]:
    """Write one grid per direction (a row per image: the real image, then one column per
    alpha), a grid of every direction for the first image, the codes and the directions."""
    check_whole_images(images, resolution)
    if not alphas:
        raise ValueError("alphas is empty: list the edit strengths, e.g. [-3, 0, 3]")
    if alpha_unit not in ALPHA_UNITS:
        raise ValueError(f"alpha_unit={alpha_unit!r}; choose one of {', '.join(ALPHA_UNITS)}")
    generator = method.frozen_generator()
    directions = direction.find(method, images.shape[1], resolution)
    directions.check_generator(generator)
    scales = alpha_scales(alpha_unit, directions, generator)
    codes, _ = invert(method, images)
    paths, first_rows = [], []
    for k, name in enumerate(directions.names):
        steps = [float(alpha * scales[k]) for alpha in alphas]
        edited = sweep(codes, directions, k, steps, generator)
        path = output_dir / f"attribute_editing_{file_stem(name)}.png"
        paths.append(save_rows([images, *edited.unbind(1)], path))
        first_rows.append(torch.cat([images[:1], edited[0]]))
    overview = output_dir / "attribute_editing_directions.png"
    paths.append(save_image_grid(torch.cat(first_rows), overview, nrow=len(alphas) + 1))
    paths.append(
        save_codes(
            output_dir / "attribute_editing_codes.pt",
            codes=codes,
            alphas=[float(a) for a in alphas],
            alpha_unit=alpha_unit,
            alpha_scales=scales,
            names=directions.names,
        )
    )
    paths.append(directions.save(output_dir / "directions.pt"))
    summary = {
        "method": directions.method,
        "names": directions.names,
        "layers": directions.layers,
        "alpha_unit": alpha_unit,
        "alpha_scales": scales.tolist(),
        "info": directions.info,
    }
    paths.append(atomic_write_json(output_dir / "directions.json", summary))
    return paths
