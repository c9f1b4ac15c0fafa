"""`ssim` of the test-set reconstructions (images of at least the 11 px window only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from invgan.evaluation.metrics.base import Entry, MetricContext, StreamPass
from invgan.evaluation.metrics.reconstruction_pass import (
    ImageMean,
    ReconstructionMetric,
    image_pairs,
    test_split,
)
from invgan.evaluation.metrics.registry import register
from invgan.evaluation.streams import StreamBatch
from invgan.metrics.reconstruction import SSIM_WINDOW, structural_similarity


@register
class StructuralSimilarity(ReconstructionMetric):
    """Mean over the test images of SSIM (Wang et al. 2004) between x and its reconstruction."""

    name = "ssim"
    block = "reconstruction"

    @classmethod
    def plan(cls, context: MetricContext, options: Mapping[str, Any]) -> list[StreamPass]:
        """The reconstruction pass, unless the images are smaller than SSIM's window."""
        if context.streams.resolution < SSIM_WINDOW:
            return []
        return super().plan(context, options)

    def __init__(
        self, context: MetricContext, options: Mapping[str, Any], walk: StreamPass
    ) -> None:
        super().__init__(context, options, walk)
        self.mean = ImageMean()

    def update(self, batch: StreamBatch) -> None:
        """Add the batch's per-image SSIM."""
        self.mean.update(structural_similarity(*image_pairs(batch)))

    def result(self) -> dict[str, Entry]:
        """`test/ssim` over every rank's images."""
        value, count = self.mean.reduce(self.context.world)
        protocol = (
            f"mean over images of SSIM (Gaussian 11 px window, sigma 1.5, K1 0.01, K2 0.03, "
            f"data range 2, valid region, mean over channels), {test_split(count)}"
        )
        return {"test/ssim": {"value": value, "count": count, "protocol": protocol}}
