"""The pass over test-set reconstructions that MAE, MSE, PSNR, SSIM, LPIPS, their cost and the
reconstruction grid share, and the per-image mean its metrics accumulate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from invgan.evaluation.metrics.base import Metric, MetricContext, StreamPass
from invgan.evaluation.streams import StreamBatch
from invgan.evaluation.world import EvaluationWorld
from invgan.metrics.reconstruction import per_image_reconstruction_errors

RECONSTRUCTION_GROUP = "reconstruction"  # its metrics share one pass; the grid comes from it


def test_reconstruction_count(options: Mapping[str, Any]) -> int | None:
    """Test images the pass reconstructs: `max_images`, null for the whole test split."""
    count = options.get("max_images")
    return None if count is None else int(count)


def test_split(count: int) -> str:
    """How protocols name the images of the pass."""
    return f"test split ({count} images)"


def image_pairs(batch: StreamBatch) -> tuple[Tensor, Tensor]:
    """The test images of a reconstruction batch and their reconstructions."""
    if batch.inputs is None:
        raise ValueError("a batch of test images was given where reconstructions were meant")
    return batch.inputs, batch.images


def pixel_errors(batch: StreamBatch) -> dict[str, Tensor]:
    """Per-image float64 MAE, MSE and PSNR of a batch's reconstructions, computed once."""
    images, reconstructions = image_pairs(batch)
    return batch.derive(
        "pixel_errors",
        lambda: per_image_reconstruction_errors(images, reconstructions, ssim=False),
    )


class ReconstructionMetric(Metric):
    """A metric of the test-set reconstructions: it reads the shared pass over the first
    `max_images` test images."""

    streams = ("test_reconstructions",)
    group = RECONSTRUCTION_GROUP

    @classmethod
    def plan(cls, context: MetricContext, options: Mapping[str, Any]) -> list[StreamPass]:
        """The reconstruction pass (`max_images` of the metric's block)."""
        return [cls.stream_pass("test_reconstructions", test_reconstruction_count(options))]


class ImageMean:
    """Streaming mean over images of a per-image value: float64 [sum, count], which ranks add
    up, so the value is the same however the images are split in batches and processes."""

    def __init__(self) -> None:
        self.sums = torch.zeros(2, dtype=torch.float64)

    def update(self, values: Tensor) -> None:
        """Add one value per image of a batch."""
        batch = [values.sum(), torch.tensor(float(values.shape[0]))]
        self.sums += torch.stack([value.to(self.sums) for value in batch])

    def reduce(self, world: EvaluationWorld) -> tuple[float, int]:
        """The mean and the number of images over every rank."""
        sums = world.sum(self.sums)
        count = int(sums[1].item())
        return float(sums[0] / count), count
