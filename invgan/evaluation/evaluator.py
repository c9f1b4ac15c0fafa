"""The metrics of one model on one datamodule (InvGAN paper, Table 1, plus the usual extras).

Protocol (InvGAN paper, Table 1): MAE per pixel per colour channel with images in [-1, 1] on
the test split; each FID compares N generated or reconstructed images against Inception
statistics of the whole training set (train and validation splits, i.e. all 60,000 MNIST
training images), computed once and cached. KID uses the same features.

Every image stream follows a fixed plan of batches (batch b holds positions b*B .. b*B+B-1,
random batch b is drawn with seed `seed + b`), so a run spread over ranks
(`invgan.evaluation.world`) sees exactly the images of a one-process run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import Tensor
from torch.utils.data import ConcatDataset, Dataset, default_collate

from invgan.evaluation.world import EvaluationWorld
from invgan.inversion.tiled import reconstruct_tiled
from invgan.losses.perceptual import PerceptualDistance
from invgan.metrics.fid import (
    FeatureMoments,
    InceptionProgress,
    RealStatistics,
    frechet_distance,
    inception_features,
    real_features_cached,
    real_statistics_cached,
)
from invgan.metrics.inception import FID_FEATURES, build_fid_metric
from invgan.metrics.kid import kernel_inception_distance
from invgan.metrics.perceptual import PerceptualDistanceAccumulator
from invgan.metrics.reconstruction import SSIM_WINDOW, ReconstructionErrorAccumulator
from invgan.metrics.runtime import measure_seconds_per_item, synchronize
from invgan.utils.config_checks import ConfigValueError
from invgan.utils.images import batch_images, to_signed_range

log = logging.getLogger(__name__)

# Positions (global indices in the stream) and images in [-1, 1] of one batch.
Batch = tuple[Tensor, Tensor]
STREAMS = {
    "rand_fid": "random samples G(M(z))",
    "rand_rec_fid": "reconstructed random samples G(E(G(M(z))))",
    "ts_rec_fid": "test-set reconstructions G(E(x))",
    "int_ts_fid": "test-pair latent midpoints G((E(x_a) + E(x_b)) / 2)",
}
FEATURE_EXTRACTOR = "inception-v3-2015-12-05-pool2048"


def as_counts(value: int | list[int] | ListConfig) -> list[int]:
    """`metrics.fid.num_samples` as a list: one count (500) or several ([500, 50000])."""
    counts = [int(value)] if isinstance(value, int) else [int(v) for v in value]
    if not counts or min(counts) < 2:
        raise ValueError(f"metrics.fid.num_samples needs counts of at least 2, got {value}")
    return counts


def _at_most(available: int, count: int | None) -> int:
    """`count` images of `available`, all of them when `count` is null."""
    return available if count is None else min(available, int(count))


def batch_plan(order: Tensor, batch_size: int) -> list[Batch]:
    """(positions, dataset indices) of consecutive batches of `order`."""
    positions = torch.arange(order.numel())
    return list(zip(positions.split(batch_size), order.split(batch_size), strict=True))


class Evaluator:
    """Computes the configured metrics for one model on one datamodule."""

    def __init__(
        self,
        model: Any,
        datamodule: Any,
        cfg: DictConfig,
        device: torch.device,
        world: EvaluationWorld | None = None,
    ) -> None:
        # Checked before any work: an unknown FID would otherwise fail after the others ran.
        which = OmegaConf.select(cfg, "metrics.fid.which", default=None) or ()
        unknown = set(which) - set(STREAMS)
        if unknown:
            raise ConfigValueError(
                f"metrics.fid.which: unknown {sorted(unknown)}; allowed: {list(STREAMS)}"
            )
        self.model = model
        # Every metric that inverts images goes through the configured inversion method (the
        # model's own encoder, optimisation, hybrid, ...), so methods compare on equal terms.
        self.inversion = hydra.utils.instantiate(cfg.inversion, model=model)
        self.datamodule = datamodule
        self.cfg = cfg
        self.device = device
        self.world = world or EvaluationWorld()
        batch_size = cfg.get("batch_size")  # null: the data config's (0 is refused earlier)
        self.batch_size = int(datamodule.eval_batch_size if batch_size is None else batch_size)
        self.grid_pairs: tuple[Tensor, Tensor] | None = None
        self.fid_metric: Any = None  # built when FIDs are computed

    # ------------------------------------------------------------ image streams
    def _dataset_batches(
        self, dataset: Dataset, count: int, shuffle: bool = False, batch_size: int | None = None
    ) -> Iterator[Batch]:
        """This rank's batches of the first `count` images (of a seeded permutation when
        shuffling), in [-1, 1] on the evaluation device.

        Batch b is read under seed `seed + b`: the training split's random augmentation and
        random patches (which FID's real statistics see, as the model did) come out the same
        in every run and on every rank."""
        if shuffle:
            rng = torch.Generator().manual_seed(int(self.cfg.seed))
            order = torch.randperm(len(dataset), generator=rng)[:count]
        else:
            order = torch.arange(min(count, len(dataset)))
        batch_size = batch_size or self.batch_size
        for positions, indices in self.world.share(batch_plan(order, batch_size)):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(self.cfg.seed) + int(positions[0]) // batch_size)
                batch = default_collate([dataset[int(index)] for index in indices])
            yield positions, to_signed_range(batch_images(batch)).to(self.device)

    def test_images(self, count: int | None = None, shuffle: bool = False) -> Iterator[Batch]:
        """Test images (all when `count` is None)."""
        dataset = self.datamodule.test_dataset
        yield from self._dataset_batches(dataset, count or len(dataset), shuffle)

    def random_samples(self, count: int) -> Iterator[Batch]:
        """G(M(z)) for `count` prior samples; batch b is drawn with seed `seed + b`."""
        plan = self.world.share(batch_plan(torch.arange(count), self.batch_size))
        for positions, _ in plan:
            batch_index = int(positions[0]) // self.batch_size
            rng = torch.Generator(device=self.device)
            rng.manual_seed(int(self.cfg.seed) + batch_index)
            yield positions, self.model.sample(positions.numel(), generator=rng)

    def random_reconstructions(self, count: int) -> Iterator[Batch]:
        """G(E(G(M(z)))): random samples inverted and regenerated."""
        for positions, samples in self.random_samples(count):
            yield positions, self.inversion.reconstruct(samples)

    def test_reconstructions(self, count: int) -> Iterator[Batch]:
        """G(E(x)) for the first `count` test images."""
        for positions, images in self.test_images(count):
            yield positions, self.inversion.reconstruct(images)

    def test_interpolations(self, count: int) -> Iterator[Batch]:
        """G((E(x_a) + E(x_b)) / 2) for random pairs of test images (paper's IntTsFID)."""
        for positions, images_a in self.test_images(count, shuffle=True):
            # The images come in a seeded random order, so pairing each with its neighbour in
            # the batch gives random pairs of distinct images.
            images_b = images_a.roll(1, dims=0)
            midpoint = (self.inversion.encode(images_a) + self.inversion.encode(images_b)) / 2
            yield positions, self.inversion.decode(midpoint)

    # ------------------------------------------------------------ reconstruction metrics
    def _lpips_accumulators(self) -> dict[str, PerceptualDistanceAccumulator]:
        lpips_cfg = self.cfg.metrics.lpips
        if not lpips_cfg.enabled:
            return {}
        accumulators = {}
        for net in lpips_cfg.nets:
            weights = lpips_cfg.weights_paths.get(net)
            distance = PerceptualDistance(net, weights, lpips_cfg.get("resize"))
            accumulators[net] = PerceptualDistanceAccumulator(distance.to(self.device))
        return accumulators

    def reconstruction_errors(self) -> dict[str, Any]:
        """Test-set MAE, MSE, PSNR, SSIM and LPIPS of the reconstructions, from one pass."""
        lpips_cfg = self.cfg.metrics.lpips
        with_ssim = int(self.datamodule.resolution) >= SSIM_WINDOW
        errors = ReconstructionErrorAccumulator(ssim=with_ssim)
        lpips = self._lpips_accumulators()
        seconds = torch.zeros((), dtype=torch.float64)
        grid_count = int(self.cfg.metrics.grid.count)
        for positions, images in self.test_images(self.cfg.metrics.reconstruction.max_images):
            synchronize(self.device)
            start = time.perf_counter()
            reconstructions = self.inversion.reconstruct(images)
            synchronize(self.device)
            seconds += time.perf_counter() - start
            errors.update(images, reconstructions)
            for accumulator in lpips.values():
                accumulator.update(images, reconstructions)
            if int(positions[0]) == 0:  # the first batch: the test images of the grid
                self.grid_pairs = (images[:grid_count], reconstructions[:grid_count])
        errors.sums = self.world.sum(errors.sums)
        for accumulator in lpips.values():
            accumulator.sums = self.world.sum(accumulator.sums)
        seconds = self.world.sum(seconds)
        count = errors.count
        split = f"test split ({count} images)"
        results = {
            "test/reconstruction_seconds_per_image": {
                "value": float(seconds) / count,
                "count": count,
                "batch_size": self.batch_size,
                "device": str(self.device),
                "processes": self.world.size,
                "protocol": (
                    "wall-clock seconds of inversion plus regeneration over the test images "
                    "above, divided by their number, at the evaluation batch size"
                ),
            }
        }
        protocols = {
            "mae": f"mean |x - x_rec| per pixel and channel, images in [-1, 1], {split}",
            "mse": f"mean (x - x_rec)^2 per pixel and channel, images in [-1, 1], {split}",
            "psnr": f"mean over images of 10 log10(2^2 / MSE) in dB (range of [-1, 1]), {split}",
            "ssim": (
                f"mean over images of SSIM (Gaussian 11 px window, sigma 1.5, K1 0.01, K2 0.03, "
                f"data range 2, valid region, mean over channels), {split}"
            ),
        }
        for name, value in errors.compute().items():
            results[f"test/{name}"] = {"value": value, "count": count, "protocol": protocols[name]}
        for net, accumulator in lpips.items():
            results[f"test/lpips_{net}"] = {
                "value": accumulator.compute(),
                "count": accumulator.count,
                "protocol": (
                    f"mean LPIPS v0.1 ({net}) of (x, x_rec), {split}, images under "
                    f"{lpips_cfg.get('resize')} px upsampled (bilinear) to it first"
                ),
            }
        return results

    def tiled_mean_absolute_error(self) -> dict[str, Any]:
        """MAE of whole test images reconstructed patch by patch (paper Sections 3.3, 4.3)."""
        tiled_cfg = self.cfg.metrics.tiled_mae
        patch_size = int(self.datamodule.resolution)
        dataset = self.datamodule.tiled_test_dataset
        errors = ReconstructionErrorAccumulator(ssim=False)
        count = tiled_cfg.max_images or len(dataset)
        size = None
        for _, images in self._dataset_batches(dataset, count, batch_size=tiled_cfg.batch_size):
            errors.update(images, reconstruct_tiled(self.inversion, images, patch_size))
            size = images.shape[-1]
        errors.sums = self.world.sum(errors.sums)
        return {
            "value": errors.compute()["mae"],
            "count": errors.count,
            "protocol": (
                f"mean |x - tiled G(E(x))| per pixel per channel, images in [-1, 1], test split "
                f"as {size}x{size} images of {patch_size}x{patch_size} patches"
            ),
        }

    # ------------------------------------------------------------ FID and KID
    def _features(
        self, batches: Iterator[Batch], total: int, keep_rows: int = 0, moment_rows: int = -1
    ) -> tuple[FeatureMoments, Tensor]:
        """Inception moments of the first `moment_rows` positions of a stream (all when -1),
        summed over ranks, and the features of its first `keep_rows` positions, in order."""
        moments = FeatureMoments(FID_FEATURES)
        rows, kept_positions = [], []
        progress = InceptionProgress(total)
        for positions, images in batches:
            features = inception_features(images, self.fid_metric)
            in_moments = positions < (total if moment_rows < 0 else moment_rows)
            moments.update(features[in_moments.to(features.device)])
            keep = positions < keep_rows
            rows.append(features[keep.to(features.device)].float().cpu())
            kept_positions.append(positions[keep])
            progress.report(moments.count * self.world.size)
        moments.sums = self.world.sum(moments.sums)
        # A rank may hold no batch at all (fewer batches than ranks).
        rows.append(torch.zeros(0, FID_FEATURES))
        kept_positions.append(torch.zeros(0, dtype=torch.long))
        features = self.world.gather_rows(torch.cat(rows), torch.cat(kept_positions))
        return moments, features

    def _training_set(self) -> Dataset:
        return ConcatDataset([self.datamodule.train_dataset, self.datamodule.val_dataset])

    def _real_images_phrase(self, count: int) -> str:
        total = len(self._training_set())
        if count == total:
            return f"the whole training set ({total} images)"
        return f"the first {count} of the {total} training images"

    def _real_key(self, count: int) -> dict[str, Any]:
        """Everything that changes the real-image statistics or features."""
        key = {
            "dataset": type(self.datamodule).__name__,
            "root": str(Path(str(getattr(self.datamodule, "root", "in-memory"))).resolve()),
            "split": "train+val",
            "resolution": int(self.datamodule.resolution),
            "channels": int(self.datamodule.channels),
            "count": count,
            "extractor": FEATURE_EXTRACTOR,
        }
        augmentation = getattr(self.datamodule, "augmentation", None)
        if augmentation is not None and (augmentation.hflip or augmentation.translate):
            key["augmentation"] = f"hflip={augmentation.hflip},translate={augmentation.translate}"
        return key

    def real_reference(self) -> tuple[RealStatistics, Tensor | None]:
        """Inception statistics of the whole training set (train + val splits) and, for KID,
        the features of its first `metrics.kid.real_count` images; both cached on disk."""
        fid_cfg, kid_cfg = self.cfg.metrics.fid, self.cfg.metrics.kid
        dataset = self._training_set()
        stat_count = _at_most(len(dataset), fid_cfg.real_count)
        feature_count = _at_most(len(dataset), kid_cfg.real_count) if kid_cfg.enabled else 0
        computed: dict[str, Any] = {}

        def compute(total: int) -> dict[str, Any]:  # one pass over the first `total` images
            if not computed:
                batches = self._dataset_batches(dataset, total)
                moments, features = self._features(batches, total, feature_count, stat_count)
                computed.update(moments=moments, features=features)
            return computed

        cache_dir, save = fid_cfg.cache_dir, self.world.is_main
        # Missing statistics: one pass gives the features too; cached ones: features only.
        statistics = real_statistics_cached(
            cache_dir,
            self._real_key(stat_count),
            lambda: compute(max(stat_count, feature_count))["moments"].statistics(),
            save,
        )
        features = None
        if feature_count:
            features = real_features_cached(
                cache_dir,
                self._real_key(feature_count),
                lambda: compute(feature_count)["features"],
                save,
            )
        return statistics, features

    def generated_distances(self) -> dict[str, Any]:
        """RandFID, RandRecFID, TsRecFID and IntTsFID (and KID of the same images) for every
        count in `metrics.fid.num_samples`."""
        fid_cfg, kid_cfg = self.cfg.metrics.fid, self.cfg.metrics.kid
        self.fid_metric = build_fid_metric(fid_cfg.weights_path, self.device)
        real, real_features = self.real_reference()
        streams: dict[str, Callable[[int], Iterator[Batch]]] = {
            "rand_fid": self.random_samples,
            "rand_rec_fid": self.random_reconstructions,
            "ts_rec_fid": self.test_reconstructions,
            "int_ts_fid": self.test_interpolations,
        }
        results = {}
        for name in fid_cfg.which:
            for count in as_counts(fid_cfg.num_samples):
                keep = count if real_features is not None else 0
                moments, features = self._features(streams[name](count), count, keep)
                fake = moments.statistics()
                distance = frechet_distance(real.mean, real.covariance, fake.mean, fake.covariance)
                protocol = (
                    f"{fake.count} {STREAMS[name]} vs Inception-v3 (2015-12-05, pool 2048) "
                    f"statistics of {self._real_images_phrase(real.count)}, torchmetrics FID"
                )
                results[f"test/{name}_{count}"] = {
                    "value": distance,
                    "count": fake.count,
                    "real_count": real.count,
                    "protocol": protocol,
                }
                if real_features is None:
                    continue
                mean, std = kernel_inception_distance(
                    real_features,
                    features,
                    int(kid_cfg.subsets),
                    int(kid_cfg.subset_size),
                    int(self.cfg.seed),
                )
                subset = min(int(kid_cfg.subset_size), real_features.shape[0], features.shape[0])
                results[f"test/{name.replace('_fid', '_kid')}_{count}"] = {
                    "value": mean,
                    "std": std,
                    "count": features.shape[0],
                    "real_count": real_features.shape[0],
                    "protocol": (
                        f"KID (cubic polynomial kernel, unbiased MMD^2), mean and std over "
                        f"{kid_cfg.subsets} subsets of {subset}: {features.shape[0]} "
                        f"{STREAMS[name]} vs "
                        f"{self._real_images_phrase(real_features.shape[0])}"
                    ),
                }
        return results

    # ------------------------------------------------------------ run time
    def inversion_runtime(self) -> dict[str, Any]:
        """Seconds per image of inversion (images to codes) at a fixed batch size."""
        rt_cfg = self.cfg.metrics.runtime
        batch_size = int(rt_cfg.batch_size)
        images = torch.cat([images for _, images in self.test_images(batch_size)])
        repeats = -(-batch_size // images.shape[0])
        batch = images.repeat(repeats, 1, 1, 1)[:batch_size]
        timing = measure_seconds_per_item(
            self.inversion.encode, batch, warmup=int(rt_cfg.warmup), repeats=int(rt_cfg.repeats)
        )
        return {
            "value": timing["seconds_per_image"],
            **timing,
            "protocol": (
                f"median over {rt_cfg.repeats} timed batches of {self.cfg.inversion._target_} "
                f"inversion (images to codes), after {rt_cfg.warmup} warm-up batches"
            ),
        }

    @torch.no_grad()
    def run(self) -> dict[str, Any]:
        """Every enabled metric, keyed by `test/<name>` (the same on every rank)."""
        metrics_cfg = self.cfg.metrics
        metrics: dict[str, Any] = {}
        if metrics_cfg.reconstruction.enabled:
            metrics.update(self.reconstruction_errors())
        has_tiles = getattr(self.datamodule, "tiled_test_dataset", None) is not None
        if metrics_cfg.tiled_mae.enabled and has_tiles:
            metrics["test/tiled_mae"] = self.tiled_mean_absolute_error()
        if metrics_cfg.fid.enabled:
            metrics.update(self.generated_distances())
        if metrics_cfg.runtime.enabled and self.world.is_main:
            # A latency: timed in one process, on rank zero's share of the test images.
            metrics["test/inversion_seconds_per_image"] = self.inversion_runtime()
        return metrics
