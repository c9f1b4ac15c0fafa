"""Reconstruction error between images and their reconstructions, both in [-1, 1]."""

from __future__ import annotations

import torch
from torch import Tensor


def _check_pair(images: Tensor, reconstructions: Tensor) -> None:
    if images.shape != reconstructions.shape:
        raise ValueError(
            f"images {tuple(images.shape)} and reconstructions {tuple(reconstructions.shape)} "
            "must have the same shape"
        )
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"expected a non-empty (N, C, H, W) batch, got {tuple(images.shape)}")


def _absolute_error_sum(images: Tensor, reconstructions: Tensor) -> Tensor:
    # float64 so that sums over many batches stay exact to round-off, whatever the split
    return (images.detach().double() - reconstructions.detach().double()).abs().sum()


def mean_absolute_error(images: Tensor, reconstructions: Tensor) -> Tensor:
    """Mean of |x - x_hat| over images, channels and pixels, in [-1, 1] units (float64 scalar)."""
    _check_pair(images, reconstructions)
    return _absolute_error_sum(images, reconstructions) / images.numel()


class MeanAbsoluteErrorAccumulator:
    """Streaming `mean_absolute_error`: the same value however the images are split in batches."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget all images seen so far."""
        self.total = torch.zeros((), dtype=torch.float64)
        self.num_values = 0
        self.count = 0

    def update(self, images: Tensor, reconstructions: Tensor) -> None:
        """Add a batch of images and their reconstructions."""
        _check_pair(images, reconstructions)
        self.total += _absolute_error_sum(images, reconstructions).cpu()
        self.num_values += images.numel()
        self.count += images.shape[0]

    def compute(self) -> float:
        """Mean absolute error over every image added since the last reset."""
        if self.num_values == 0:
            raise RuntimeError("MeanAbsoluteErrorAccumulator.compute() called before update()")
        return float(self.total / self.num_values)
