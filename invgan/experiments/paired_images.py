"""Images of a dataset split and their reconstructions by an inversion method, side by side.

Both are kept as uint8, as if the reconstructed dataset had been written to image files (the
paper trains on "the reconstructed dataset"); it also keeps a full split in memory: CelebA's
162,770 training faces take 2 GB per copy at 64 px. Images the size of the generator's output
are reconstructed whole; larger ones patch by patch (the paper's tiling-based inversion,
Sections 3.3 and 4.3, with the generator's resolution as the patch size).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
from torch.utils.data import Dataset, default_collate

from invgan.inversion.protocols import InversionMethod
from invgan.inversion.tiled import reconstruct_tiled
from invgan.utils.config_checks import ConfigValueError, check_arguments
from invgan.utils.images import batch_images, to_signed_range, to_unit_range


@dataclass(frozen=True)
class ImageSettings:
    """Which images are inverted (`images.*` in conf/semantic_consistency.yaml)."""

    num_train: int | None = None
    num_test: int | None = None
    batch_size: int = 64

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        check_arguments("images", type(self), values)
        for name in ("num_train", "num_test"):
            if getattr(self, name) == 0:
                raise ConfigValueError(
                    f"images.{name}=0: the classifiers need images; give a count >= 1 or null "
                    "for the whole split"
                )


class PairedImages(NamedTuple):
    """uint8 (N, C, H, W) images and their reconstructions, in the same order."""

    originals: torch.Tensor
    reconstructions: torch.Tensor


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as uint8 0-255 on the CPU (what an 8-bit image file would hold)."""
    return to_unit_range(images).mul(255).round().to(torch.uint8).cpu()


def chosen_indices(length: int, count: int | None, seed: int) -> torch.Tensor:
    """`count` indices of a split drawn with `seed` (all when null), in increasing order so
    files are read in their listed order."""
    if count is None or count >= length:
        return torch.arange(length)
    order = torch.randperm(length, generator=torch.Generator().manual_seed(seed))
    return order[:count].sort().values


def reconstruction_patch_size(image_size: int, resolution: int) -> int | None:
    """None (reconstructed whole) for images of the generator's size; for larger ones the
    patch size of tiled reconstruction, the generator's resolution."""
    if image_size == resolution:
        return None
    if image_size > resolution:
        return resolution
    raise ConfigValueError(
        f"the images are {image_size} px, smaller than the generator's {resolution} px output: "
        f"use data.resolution={resolution} (or a multiple of it for tiled reconstruction)"
    )


@torch.no_grad()
def paired_images(
    method: InversionMethod,
    dataset: Dataset,
    indices: torch.Tensor,
    patch_size: int | None,
    batch_size: int,
    seed: int,
    device: torch.device,
) -> PairedImages:
    """The chosen images of `dataset` and `method`'s reconstructions of them: whole, or
    patch by patch with `patch_size` (see `reconstruction_patch_size`).

    Batch b is read under seed `seed + b`, so a training split's random patches and flips are
    the same in every run.
    """
    originals, reconstructions = [], []
    for batch_index, chunk in enumerate(indices.split(batch_size)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + batch_index)
            batch = default_collate([dataset[int(index)] for index in chunk])
        images = to_signed_range(batch_images(batch)).to(device)
        if patch_size is None:
            rebuilt = method.reconstruct(images)
        else:
            rebuilt = reconstruct_tiled(method, images, patch_size)
        originals.append(to_uint8(images))
        reconstructions.append(to_uint8(rebuilt))
    return PairedImages(torch.cat(originals), torch.cat(reconstructions))
