"""What FID and KID share: the Inception network, each batch's features (computed once for
both), and the real-image reference (statistics for FID, feature rows for KID) of the training
set, cached on disk and computed in one walk whichever of them is missing.

Protocol (InvGAN paper, Table 1): each FID compares N generated or reconstructed images against
Inception statistics of the whole training set (train and validation splits, i.e. all 60,000
MNIST training images), computed once and cached. KID uses the same features.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import ListConfig
from torch import Tensor

from invgan.evaluation.metrics.base import MetricContext
from invgan.evaluation.streams import Batch, ImageStreams, StreamBatch
from invgan.evaluation.world import EvaluationWorld
from invgan.metrics.fid import (
    FeatureMoments,
    InceptionProgress,
    RealStatistics,
    inception_features,
    real_features_cached,
    real_statistics_cached,
)
from invgan.metrics.inception import FID_FEATURES, build_fid_metric

INCEPTION_GROUP = "inception"  # FID and KID of the same images share their pass
FEATURE_EXTRACTOR = "inception-v3-2015-12-05-pool2048"


def as_counts(value: int | list[int] | ListConfig) -> list[int]:
    """`metrics.fid.num_samples` as a list: one count (500) or several ([500, 50000])."""
    counts = [int(value)] if isinstance(value, int) else [int(v) for v in value]
    if not counts or min(counts) < 2:
        raise ValueError(f"metrics.fid.num_samples needs counts of at least 2, got {value}")
    return counts


class InceptionNetwork:
    """The FID Inception-v3 (`metrics.fid.weights_path`), built on first use."""

    def __init__(self, weights_path: str | None, device: torch.device) -> None:
        self.weights_path = weights_path
        self.device = device
        self._metric: Any = None

    @property
    def metric(self) -> Any:
        """The torchmetrics FID module whose Inception computes the features."""
        if self._metric is None:
            self._metric = build_fid_metric(self.weights_path, self.device)
        return self._metric

    def features(self, images: Tensor) -> Tensor:
        """Float64 features (N, 2048) of [-1, 1] images."""
        return inception_features(images, self.metric)

    def batch_features(self, batch: StreamBatch) -> Tensor:
        """A stream batch's features, computed once for every metric of the pass."""
        return batch.derive(f"inception:{self.weights_path}", lambda: self.features(batch.images))


def inception_network(context: MetricContext, options: Mapping[str, Any]) -> InceptionNetwork:
    """The evaluation's one network for `options['weights_path']`."""
    weights = options.get("weights_path")
    return context.share(("inception", weights), lambda: InceptionNetwork(weights, context.device))


class RowMoments:
    """Inception moments of the rows at stream positions below `limit`, summed over ranks."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.moments = FeatureMoments(FID_FEATURES)

    def update(self, positions: Tensor, features: Tensor) -> None:
        """Add a batch's rows that fall below the limit."""
        inside = positions < self.limit
        self.moments.update(features[inside.to(features.device)])

    def reduce(self, world: EvaluationWorld) -> FeatureMoments:
        """The moments of every rank's rows."""
        sums = self.moments.sums
        assert sums is not None, "moments of a known dimension start at zero"
        self.moments.sums = world.sum(sums)
        return self.moments


class OrderedRows:
    """Feature rows at stream positions below `limit`, gathered over ranks in stream order."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # A rank may hold no batch at all (fewer batches than ranks): start with empty rows.
        self.rows = [torch.zeros(0, FID_FEATURES)]
        self.positions = [torch.zeros(0, dtype=torch.long)]

    def update(self, positions: Tensor, features: Tensor) -> None:
        """Keep a batch's rows that fall below the limit."""
        keep = positions < self.limit
        self.rows.append(features[keep.to(features.device)].float().cpu())
        self.positions.append(positions[keep])

    def gather(self, world: EvaluationWorld) -> Tensor:
        """Every rank's rows (N, 2048), in stream order."""
        return world.gather_rows(torch.cat(self.rows), torch.cat(self.positions))


class RealReference:
    """Inception statistics of the first `statistics_count` training images (FID) and the
    features of the first `feature_count` (KID), each cached on disk under a key naming the
    data; both missing: one walk over the longer prefix gives both."""

    def __init__(
        self, streams: ImageStreams, network: InceptionNetwork, cache_dir: str | Path
    ) -> None:
        self.streams = streams
        self.network = network
        self.cache_dir = cache_dir
        self.total = len(streams.training_set())
        self.statistics_count = 0  # 0: not asked for
        self.feature_count = 0
        self._statistics: RealStatistics | None = None
        self._features: Tensor | None = None
        self._resolved = False

    def _at_most(self, count: int | None) -> int:
        return self.total if count is None else min(self.total, int(count))

    def want_statistics(self, count: int | None) -> None:
        """Ask for the statistics of the first `count` training images (null: all)."""
        self.statistics_count = self._at_most(count)

    def want_features(self, count: int | None) -> None:
        """Ask for the features of the first `count` training images (null: all)."""
        self.feature_count = self._at_most(count)

    def statistics(self) -> RealStatistics:
        """The FID statistics asked for."""
        self._resolve()
        assert self._statistics is not None, "want_statistics() comes before statistics()"
        return self._statistics

    def features(self) -> Tensor:
        """The KID feature rows asked for."""
        self._resolve()
        assert self._features is not None, "want_features() comes before features()"
        return self._features

    def phrase(self, count: int) -> str:
        """How protocols name `count` real images."""
        if count == self.total:
            return f"the whole training set ({self.total} images)"
        return f"the first {count} of the {self.total} training images"

    def key(self, count: int) -> dict[str, Any]:
        """Everything that changes the real-image statistics or features."""
        data = self.streams.datamodule
        key = {
            "dataset": type(data).__name__,
            "root": str(Path(str(getattr(data, "root", "in-memory"))).resolve()),
            "split": "train+val",
            "resolution": int(data.resolution),
            "channels": int(data.channels),
            "count": count,
            "extractor": FEATURE_EXTRACTOR,
        }
        augmentation = getattr(data, "augmentation", None)
        if augmentation is not None and (augmentation.hflip or augmentation.translate):
            key["augmentation"] = f"hflip={augmentation.hflip},translate={augmentation.translate}"
        return key

    def _walk(self, total: int) -> tuple[FeatureMoments, Tensor]:
        """Moments of the first `statistics_count` and rows of the first `feature_count` of
        one walk over the first `total` training images."""
        world = self.streams.world
        moments = RowMoments(self.statistics_count)
        rows = OrderedRows(self.feature_count)
        progress = InceptionProgress(total)
        batches: Iterator[Batch] = self.streams.training_images(total)
        for positions, images in batches:
            features = self.network.features(images)
            moments.update(positions, features)
            rows.update(positions, features)
            progress.report(moments.moments.count * world.size)
        return moments.reduce(world), rows.gather(world)

    def _resolve(self) -> None:
        if self._resolved:
            return
        walked: dict[str, Any] = {}

        def walk(total: int) -> dict[str, Any]:  # one walk, whichever cache misses first
            if not walked:
                walked["moments"], walked["features"] = self._walk(total)
            return walked

        save = self.streams.world.is_main  # in a distributed run only rank zero writes
        stat_count, feature_count = self.statistics_count, self.feature_count
        if stat_count:
            self._statistics = real_statistics_cached(
                self.cache_dir,
                self.key(stat_count),
                lambda: walk(max(stat_count, feature_count))["moments"].statistics(),
                save,
            )
        if feature_count:
            self._features = real_features_cached(
                self.cache_dir,
                self.key(feature_count),
                lambda: walk(feature_count)["features"],
                save,
            )
        self._resolved = True


def real_reference(context: MetricContext, options: Mapping[str, Any]) -> RealReference:
    """The evaluation's one real-image reference for an Inception network and cache folder."""
    weights, cache_dir = options.get("weights_path"), str(options["cache_dir"])
    return context.share(
        ("real_reference", weights, cache_dir),
        lambda: RealReference(context.streams, inception_network(context, options), cache_dir),
    )
