"""The FID family of the InvGAN paper (Table 1): `rand_fid`, `rand_rec_fid`, `ts_rec_fid` and
`int_ts_fid`, one stream each, keyed `test/<name>_<N>` for every N of `metrics.fid.num_samples`
(small-N FID is biased upward, so each number is keyed and labelled by its N)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from invgan.evaluation.metrics.base import Entry, Metric, MetricContext, StreamPass
from invgan.evaluation.metrics.inception import (
    INCEPTION_GROUP,
    RowMoments,
    as_counts,
    inception_network,
    real_reference,
)
from invgan.evaluation.metrics.registry import register
from invgan.evaluation.streams import STREAMS, StreamBatch
from invgan.metrics.fid import InceptionProgress, frechet_distance
from invgan.utils.config_checks import ConfigValueError


class GeneratedImagesFID(Metric):
    """FID of N images of one stream against the training set's Inception statistics."""

    block = "fid"
    group = INCEPTION_GROUP

    @classmethod
    def check(cls, metrics_cfg: Mapping[str, Any]) -> None:
        """Refuse names in `metrics.fid.which` that are no FID."""
        which = (metrics_cfg.get("fid") or {}).get("which") or ()
        allowed = [fid.name for fid in GeneratedImagesFID.__subclasses__()]
        unknown = set(which) - set(allowed)
        if unknown:
            raise ConfigValueError(
                f"metrics.fid.which: unknown {sorted(unknown)}; allowed: {allowed}"
            )

    @classmethod
    def enabled(cls, metrics_cfg: Mapping[str, Any]) -> bool:
        """On with its block when `metrics.fid.which` lists it."""
        return super().enabled(metrics_cfg) and cls.name in metrics_cfg["fid"]["which"]

    @classmethod
    def plan(cls, context: MetricContext, options: Mapping[str, Any]) -> list[StreamPass]:
        """One pass per sample count; asks for the real statistics (`real_count` images)."""
        real_reference(context, options).want_statistics(options.get("real_count"))
        return [cls.stream_pass(cls.streams[0], n) for n in as_counts(options["num_samples"])]

    def __init__(
        self, context: MetricContext, options: Mapping[str, Any], walk: StreamPass
    ) -> None:
        super().__init__(context, options, walk)
        assert walk.count is not None, "an FID pass has a sample count"
        self.count = walk.count
        self.network = inception_network(context, options)
        self.reference = real_reference(context, options)
        self.real = self.reference.statistics()
        self.moments = RowMoments(self.count)
        self.progress = InceptionProgress(self.count)

    def update(self, batch: StreamBatch) -> None:
        """Add the batch's Inception features."""
        self.moments.update(batch.positions, self.network.batch_features(batch))
        self.progress.report(self.moments.moments.count * self.context.world.size)

    def result(self) -> dict[str, Entry]:
        """`test/<name>_<N>`."""
        fake = self.moments.reduce(self.context.world).statistics()
        real = self.real
        distance = frechet_distance(real.mean, real.covariance, fake.mean, fake.covariance)
        protocol = (
            f"{fake.count} {STREAMS[self.streams[0]]} vs Inception-v3 (2015-12-05, pool 2048) "
            f"statistics of {self.reference.phrase(real.count)}, torchmetrics FID"
        )
        return {
            f"test/{self.name}_{self.count}": {
                "value": distance,
                "count": fake.count,
                "real_count": real.count,
                "protocol": protocol,
            }
        }


@register
class RandomSampleFID(GeneratedImagesFID):
    """RandFID: how close the generator's random samples are to the data."""

    name = "rand_fid"
    streams = ("random_samples",)


@register
class RandomReconstructionFID(GeneratedImagesFID):
    """RandRecFID: random samples after inversion and regeneration."""

    name = "rand_rec_fid"
    streams = ("random_reconstructions",)


@register
class TestReconstructionFID(GeneratedImagesFID):
    """TsRecFID: reconstructions of the test images."""

    name = "ts_rec_fid"
    streams = ("test_reconstructions",)


@register
class TestInterpolationFID(GeneratedImagesFID):
    """IntTsFID: images of latent midpoints of random test-image pairs."""

    name = "int_ts_fid"
    streams = ("test_interpolations",)
