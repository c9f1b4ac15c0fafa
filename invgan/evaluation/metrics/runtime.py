"""`inversion_seconds_per_image`: the latency of inversion (images to codes) at a fixed batch
size, timed in one process on rank zero's share of the test images."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from invgan.evaluation.metrics.base import Entry, Metric, MetricContext, StreamPass
from invgan.evaluation.metrics.registry import register
from invgan.evaluation.streams import StreamBatch
from invgan.metrics.runtime import measure_seconds_per_item


@register
class InversionRuntime(Metric):
    """Median seconds per image of the inversion method's `encode` on one repeated batch."""

    name = "inversion_seconds_per_image"
    block = "runtime"
    streams = ("test_images",)
    main_rank_only = True

    @classmethod
    def plan(cls, context: MetricContext, options: Mapping[str, Any]) -> list[StreamPass]:
        """The first `batch_size` test images (rank zero's share of them)."""
        return [cls.stream_pass("test_images", int(options["batch_size"]))]

    def __init__(
        self, context: MetricContext, options: Mapping[str, Any], walk: StreamPass
    ) -> None:
        super().__init__(context, options, walk)
        self.images: list[torch.Tensor] = []

    def update(self, batch: StreamBatch) -> None:
        """Keep the images to time inversion on."""
        self.images.append(batch.images)

    def result(self) -> dict[str, Entry]:
        """Time `encode` on `batch_size` images (the test images repeated to fill it)."""
        batch_size = int(self.options["batch_size"])
        warmup, repeats = self.options["warmup"], self.options["repeats"]
        images = torch.cat(self.images)
        batch = images.repeat(-(-batch_size // images.shape[0]), 1, 1, 1)[:batch_size]
        inversion = self.context.inversion
        timing = measure_seconds_per_item(
            inversion.encode, batch, warmup=int(warmup), repeats=int(repeats)
        )
        method = f"{type(inversion).__module__}.{type(inversion).__qualname__}"
        return {
            "test/inversion_seconds_per_image": {
                "value": timing["seconds_per_image"],
                **timing,
                "protocol": (
                    f"median over {repeats} timed batches of {method} inversion (images to "
                    f"codes), after {warmup} warm-up batches"
                ),
            }
        }
