"""Small, deterministic, in-memory images of Gaussian blobs on black, for fast tests."""

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.base import ImageDataModule, check_int


def make_blob_images(
    num_images: int,
    resolution: int,
    channels: int,
    seed: int | Sequence[int],
    max_blobs: int = 3,
) -> torch.Tensor:
    """Return ``num_images`` float32 images (N, C, R, R) in [0, 1] with 1..max_blobs blobs each.

    ``seed`` is anything ``numpy.random.default_rng`` accepts, e.g. ``[seed, split_index]``.
    Each blob is an isotropic Gaussian with a random centre (kept away from the border), width,
    peak intensity and, for more than one channel, colour; overlapping blobs add and are clipped.
    """
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, max_blobs + 1, size=num_images)
    centres = rng.uniform(0.2, 0.8, size=(num_images, max_blobs, 2))
    widths = rng.uniform(0.06, 0.14, size=(num_images, max_blobs))
    peaks = rng.uniform(0.5, 1.0, size=(num_images, max_blobs))
    colours = rng.uniform(0.3, 1.0, size=(num_images, max_blobs, channels))
    if channels == 1:
        colours[:] = 1.0
    peaks *= np.arange(max_blobs) < counts[:, None]  # switch off unused blobs

    grid = (np.arange(resolution) + 0.5) / resolution  # pixel centres in (0, 1)
    dy = grid[None, None, :, None] - centres[..., 0, None, None]
    dx = grid[None, None, None, :] - centres[..., 1, None, None]
    blobs = np.exp(-(dy**2 + dx**2) / (2 * widths[..., None, None] ** 2))
    blobs *= peaks[..., None, None]  # (N, B, R, R)
    images = np.einsum("nbhw,nbc->nchw", blobs, colours)
    return torch.from_numpy(np.clip(images, 0.0, 1.0).astype(np.float32))


class SyntheticDataset(Dataset):
    """Images held in one float32 tensor (N, C, R, R); items are copies of single images."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        # A copy, so in-place edits by a consumer cannot alter the dataset.
        return self.images[index].clone()


class SyntheticDataModule(ImageDataModule[SyntheticDataset]):
    """Generated blob images: cheap, deterministic given ``seed`` and easy to learn."""

    name = "synthetic"

    def __init__(
        self,
        num_train: int = 256,
        num_val: int = 64,
        num_test: int = 64,
        resolution: int = 16,
        channels: int = 1,
        max_blobs: int = 3,
        batch_size: int = 16,
        eval_batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(
            resolution=resolution,
            channels=channels,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            pin_memory=pin_memory,
            seed=seed,
        )
        check_int("num_train", num_train, minimum=0)
        check_int("num_val", num_val, minimum=0)
        check_int("num_test", num_test, minimum=0)
        check_int("max_blobs", max_blobs)
        self.num_train = num_train
        self.num_val = num_val
        self.num_test = num_test
        self.max_blobs = max_blobs

    def build_datasets(self) -> tuple[SyntheticDataset, SyntheticDataset, SyntheticDataset]:
        """Generate each split from its own seed, so split sizes do not affect one another."""
        sizes = (self.num_train, self.num_val, self.num_test)
        train, val, test = (
            SyntheticDataset(
                make_blob_images(
                    size, self.resolution, self.channels, [self.seed, index], self.max_blobs
                )
            )
            for index, size in enumerate(sizes)
        )
        return train, val, test
