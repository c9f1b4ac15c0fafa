"""KID of the images each FID scores: `rand_kid`, `rand_rec_kid`, `ts_rec_kid` and
`int_ts_kid`, keyed `test/<name>_<N>`, from the same Inception features as the FID of the same
stream and count (one pass serves both)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from invgan.evaluation.metrics.base import Entry, Metric, MetricContext, StreamPass
from invgan.evaluation.metrics.fid import (
    GeneratedImagesFID,
    RandomReconstructionFID,
    RandomSampleFID,
    TestInterpolationFID,
    TestReconstructionFID,
)
from invgan.evaluation.metrics.inception import (
    INCEPTION_GROUP,
    OrderedRows,
    as_counts,
    inception_network,
    real_reference,
)
from invgan.evaluation.metrics.registry import register
from invgan.evaluation.streams import STREAMS, StreamBatch
from invgan.metrics.kid import kernel_inception_distance


class GeneratedImagesKID(Metric):
    """KID of N images of an FID's stream against the first training images' features."""

    block = "kid"
    group = INCEPTION_GROUP
    fid: ClassVar[type[GeneratedImagesFID]]  # the FID whose images it scores

    @classmethod
    def enabled(cls, metrics_cfg: Mapping[str, Any]) -> bool:
        """On with its block when the FID of its images is on."""
        return super().enabled(metrics_cfg) and cls.fid.enabled(metrics_cfg)

    @classmethod
    def plan(cls, context: MetricContext, options: Mapping[str, Any]) -> list[StreamPass]:
        """The FID's passes; asks for the features of `real_count` training images."""
        real_reference(context, options).want_features(options.get("real_count"))
        return [cls.stream_pass(cls.streams[0], n) for n in as_counts(options["num_samples"])]

    def __init__(
        self, context: MetricContext, options: Mapping[str, Any], walk: StreamPass
    ) -> None:
        super().__init__(context, options, walk)
        assert walk.count is not None, "a KID pass has a sample count"
        self.count = walk.count
        self.network = inception_network(context, options)
        self.reference = real_reference(context, options)
        self.real = self.reference.features()
        self.rows = OrderedRows(self.count)

    def update(self, batch: StreamBatch) -> None:
        """Keep the batch's Inception features."""
        self.rows.update(batch.positions, self.network.batch_features(batch))

    def result(self) -> dict[str, Entry]:
        """`test/<name>_<N>` with the standard deviation over subsets."""
        features = self.rows.gather(self.context.world)
        subsets, subset_size = int(self.options["subsets"]), int(self.options["subset_size"])
        mean, std = kernel_inception_distance(
            self.real, features, subsets, subset_size, self.context.seed
        )
        subset = min(subset_size, self.real.shape[0], features.shape[0])
        return {
            f"test/{self.name}_{self.count}": {
                "value": mean,
                "std": std,
                "count": features.shape[0],
                "real_count": self.real.shape[0],
                "protocol": (
                    f"KID (cubic polynomial kernel, unbiased MMD^2), mean and std over "
                    f"{self.options['subsets']} subsets of {subset}: {features.shape[0]} "
                    f"{STREAMS[self.streams[0]]} vs "
                    f"{self.reference.phrase(self.real.shape[0])}"
                ),
            }
        }


@register
class RandomSampleKID(GeneratedImagesKID):
    """KID of RandFID's images."""

    name = "rand_kid"
    fid = RandomSampleFID
    streams = RandomSampleFID.streams


@register
class RandomReconstructionKID(GeneratedImagesKID):
    """KID of RandRecFID's images."""

    name = "rand_rec_kid"
    fid = RandomReconstructionFID
    streams = RandomReconstructionFID.streams


@register
class TestReconstructionKID(GeneratedImagesKID):
    """KID of TsRecFID's images."""

    name = "ts_rec_kid"
    fid = TestReconstructionFID
    streams = TestReconstructionFID.streams


@register
class TestInterpolationKID(GeneratedImagesKID):
    """KID of IntTsFID's images."""

    name = "int_ts_kid"
    fid = TestInterpolationFID
    streams = TestInterpolationFID.streams
