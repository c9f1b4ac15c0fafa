"""`tiled_mae`: MAE of whole test images reconstructed patch by patch (paper Sections 3.3, 4.3),
for patch datasets (imagenet_patches), whose test split holds whole images to tile."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from invgan.evaluation.metrics.base import Entry, Metric, MetricContext, StreamPass
from invgan.evaluation.metrics.registry import register
from invgan.evaluation.streams import StreamBatch
from invgan.inversion.tiled import reconstruct_tiled
from invgan.metrics.reconstruction import ReconstructionErrorAccumulator


@register
class TiledMeanAbsoluteError(Metric):
    """Mean |x - tiled G(E(x))| over whole test images cut into patches of the model's size."""

    name = "tiled_mae"
    block = "tiled_mae"
    streams = ("tiled_test_images",)

    @classmethod
    def plan(cls, context: MetricContext, options: Mapping[str, Any]) -> list[StreamPass]:
        """One pass over the first `max_images` whole test images, `batch_size` at a time."""
        count = options.get("max_images")
        return [
            cls.stream_pass(
                "tiled_test_images",
                None if count is None else int(count),
                int(options["batch_size"]),
            )
        ]

    def __init__(
        self, context: MetricContext, options: Mapping[str, Any], walk: StreamPass
    ) -> None:
        super().__init__(context, options, walk)
        self.patch_size = context.streams.resolution
        self.errors = ReconstructionErrorAccumulator(ssim=False)
        self.size: int | None = None

    def update(self, batch: StreamBatch) -> None:
        """Reconstruct the batch's images patch by patch and add their errors."""
        tiled = reconstruct_tiled(self.context.inversion, batch.images, self.patch_size)
        self.errors.update(batch.images, tiled)
        self.size = batch.images.shape[-1]

    def result(self) -> dict[str, Entry]:
        """`test/tiled_mae` over every rank's images."""
        self.errors.sums = self.context.world.sum(self.errors.sums)
        patch, size = self.patch_size, self.size
        return {
            "test/tiled_mae": {
                "value": self.errors.compute()["mae"],
                "count": self.errors.count,
                "protocol": (
                    f"mean |x - tiled G(E(x))| per pixel per channel, images in [-1, 1], test "
                    f"split as {size}x{size} images of {patch}x{patch} patches"
                ),
            }
        }
