"""`lpips_<net>`: LPIPS of the test-set reconstructions, for each of `metrics.lpips.nets`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from invgan.evaluation.metrics.base import Entry, MetricContext, StreamPass
from invgan.evaluation.metrics.reconstruction_pass import (
    ReconstructionMetric,
    image_pairs,
    test_split,
)
from invgan.evaluation.metrics.registry import register
from invgan.evaluation.streams import StreamBatch
from invgan.losses.perceptual import PerceptualDistance
from invgan.metrics.perceptual import PerceptualDistanceAccumulator


@register
class LearnedPerceptualDistance(ReconstructionMetric):
    """Mean LPIPS v0.1 between the test images and their reconstructions, per network."""

    name = "lpips"
    block = "lpips"

    @classmethod
    def enabled(cls, metrics_cfg: Mapping[str, Any]) -> bool:
        """On with its block and the reconstruction metrics, whose images it scores."""
        reconstruction = metrics_cfg.get("reconstruction")
        on = reconstruction is not None and bool(reconstruction.get("enabled", False))
        return on and super().enabled(metrics_cfg)

    def __init__(
        self, context: MetricContext, options: Mapping[str, Any], walk: StreamPass
    ) -> None:
        super().__init__(context, options, walk)
        self.resize = options.get("resize")
        self.accumulators = {}
        for net in options["nets"]:
            weights = (options.get("weights_paths") or {}).get(net)
            distance = PerceptualDistance(net, weights, self.resize)
            self.accumulators[net] = PerceptualDistanceAccumulator(distance.to(context.device))

    def update(self, batch: StreamBatch) -> None:
        """Add the batch's distances under every network."""
        images, reconstructions = image_pairs(batch)
        for accumulator in self.accumulators.values():
            accumulator.update(images, reconstructions)

    def result(self) -> dict[str, Entry]:
        """`test/lpips_<net>` over every rank's images."""
        results = {}
        for net, accumulator in self.accumulators.items():
            accumulator.sums = self.context.world.sum(accumulator.sums)
            results[f"test/lpips_{net}"] = {
                "value": accumulator.compute(),
                "count": accumulator.count,
                "protocol": (
                    f"mean LPIPS v0.1 ({net}) of (x, x_rec), {test_split(accumulator.count)}, "
                    f"images under {self.resize} px upsampled (bilinear) to it first"
                ),
            }
        return results
