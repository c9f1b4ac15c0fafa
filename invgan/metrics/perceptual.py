"""Mean LPIPS distance between images and their reconstructions, accumulated over batches."""

from __future__ import annotations

import torch

from invgan.losses.perceptual import PerceptualDistance


class PerceptualDistanceAccumulator:
    """Streaming mean of per-image LPIPS: the same value however images are split in batches."""

    def __init__(self, distance: PerceptualDistance) -> None:
        self.distance = distance
        self.total = 0.0
        self.count = 0

    @torch.no_grad()
    def update(self, images: torch.Tensor, reconstructions: torch.Tensor) -> None:
        """Add a batch of images in [-1, 1] and their reconstructions."""
        self.total += float(self.distance(images, reconstructions).double().sum())
        self.count += images.shape[0]

    def compute(self) -> float:
        """Mean LPIPS over every image added so far."""
        if self.count == 0:
            raise RuntimeError("PerceptualDistanceAccumulator.compute() called before update()")
        return self.total / self.count
