"""`mae` (the InvGAN paper's Table 1), `mse` and `psnr` of the test-set reconstructions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from invgan.evaluation.metrics.base import Entry, MetricContext, StreamPass
from invgan.evaluation.metrics.reconstruction_pass import (
    ImageMean,
    ReconstructionMetric,
    pixel_errors,
    test_split,
)
from invgan.evaluation.metrics.registry import register
from invgan.evaluation.streams import StreamBatch


class PixelError(ReconstructionMetric):
    """Mean over the test images of a per-image error between x and its reconstruction."""

    block = "reconstruction"
    measures: ClassVar[str]  # what is averaged, for the protocol

    def __init__(
        self, context: MetricContext, options: Mapping[str, Any], walk: StreamPass
    ) -> None:
        super().__init__(context, options, walk)
        self.mean = ImageMean()

    def update(self, batch: StreamBatch) -> None:
        """Add the batch's per-image errors."""
        self.mean.update(pixel_errors(batch)[self.name])

    def result(self) -> dict[str, Entry]:
        """`test/<name>` over every rank's images."""
        value, count = self.mean.reduce(self.context.world)
        protocol = f"{self.measures}, {test_split(count)}"
        return {f"test/{self.name}": {"value": value, "count": count, "protocol": protocol}}


@register
class MeanAbsoluteError(PixelError):
    """MAE: the InvGAN paper's reconstruction metric (Table 1)."""

    name = "mae"
    measures = "mean |x - x_rec| per pixel and channel, images in [-1, 1]"


@register
class MeanSquaredError(PixelError):
    """MSE."""

    name = "mse"
    measures = "mean (x - x_rec)^2 per pixel and channel, images in [-1, 1]"


@register
class PeakSignalToNoiseRatio(PixelError):
    """PSNR in dB, averaged over images."""

    name = "psnr"
    measures = "mean over images of 10 log10(2^2 / MSE) in dB (range of [-1, 1])"
