"""Mean LPIPS distance between images and their reconstructions, accumulated over batches."""

from __future__ import annotations

import torch

from invgan.losses.perceptual import PerceptualDistance


class PerceptualDistanceAccumulator:
    """Streaming mean of per-image LPIPS: the same value however images are split in batches.

    The whole state is `sums` (float64 [sum of distances, image count]), so ranks of a
    distributed evaluation add theirs up.
    """

    def __init__(self, distance: PerceptualDistance) -> None:
        self.distance = distance
        self.sums = torch.zeros(2, dtype=torch.float64)

    @property
    def count(self) -> int:
        """Images added so far."""
        return int(self.sums[1])

    @torch.no_grad()
    def update(self, images: torch.Tensor, reconstructions: torch.Tensor) -> None:
        """Add a batch of images in [-1, 1] and their reconstructions."""
        distances = self.distance(images, reconstructions).double().cpu()
        self.sums += torch.stack([distances.sum(), torch.tensor(float(images.shape[0]))])

    def compute(self) -> float:
        """Mean LPIPS over every image added so far."""
        if self.count == 0:
            raise RuntimeError("PerceptualDistanceAccumulator.compute() called before update()")
        return float(self.sums[0] / self.sums[1])
