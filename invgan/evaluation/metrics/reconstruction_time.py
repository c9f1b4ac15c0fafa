"""`reconstruction_seconds_per_image`: what the reconstructions the other metrics score cost."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from invgan.evaluation.metrics.base import Entry, MetricContext, StreamPass
from invgan.evaluation.metrics.reconstruction_pass import (
    ReconstructionMetric,
)
from invgan.evaluation.metrics.registry import register
from invgan.evaluation.streams import StreamBatch


@register
class ReconstructionTime(ReconstructionMetric):
    """Wall-clock seconds per image of inversion plus regeneration over the test pass."""

    name = "reconstruction_seconds_per_image"
    block = "reconstruction"

    def __init__(
        self, context: MetricContext, options: Mapping[str, Any], walk: StreamPass
    ) -> None:
        super().__init__(context, options, walk)
        self.sums = torch.zeros(2, dtype=torch.float64)  # [seconds, images], summed over ranks

    def update(self, batch: StreamBatch) -> None:
        """Add the batch's seconds and images."""
        self.sums += torch.tensor(
            [batch.seconds, float(batch.images.shape[0])], dtype=self.sums.dtype
        )

    def result(self) -> dict[str, Entry]:
        """`test/reconstruction_seconds_per_image` with the settings that timed it."""
        seconds, count = self.context.world.sum(self.sums).tolist()
        count = int(count)
        return {
            "test/reconstruction_seconds_per_image": {
                "value": seconds / count,
                "count": count,
                "batch_size": self.context.streams.batch_size,
                "device": str(self.context.device),
                "processes": self.context.world.size,
                "protocol": (
                    "wall-clock seconds of inversion plus regeneration over the test images "
                    "above, divided by their number, at the evaluation batch size"
                ),
            }
        }
