"""Fréchet Inception Distance against real-image statistics computed once and cached on disk.

Images are float tensors in [-1, 1] of shape (N, C, H, W) with C = 1 or 3. They reach Inception
in one way only (`images_to_inception_uint8`): uint8 RGB in [0, 255], grayscale repeated to
three channels. The metric's Inception module then resizes to 299 px itself, exactly as
`FrechetInceptionDistance.update` does for uint8 input, so features (and FID values) are the
ones torchmetrics computes for the same images.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torchmetrics.image.fid import FrechetInceptionDistance

from invgan.checkpoints.atomic import atomic_write
from invgan.checkpoints.safe_load import safe_torch_load

log = logging.getLogger(__name__)
PROGRESS_INTERVAL_SECONDS = 60.0


def images_to_inception_uint8(images: Tensor) -> Tensor:
    """Map [-1, 1] images (N, 1 or 3, H, W) to uint8 RGB: (x + 1) * 127.5, rounded, clamped."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
    pixels = ((images.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return pixels.repeat(1, 3, 1, 1) if pixels.shape[1] == 1 else pixels


@torch.no_grad()
def inception_features(images: Tensor, fid_metric: FrechetInceptionDistance) -> Tensor:
    """Float64 Inception features (N, D) of [-1, 1] images, as the metric's `update` gets them."""
    pixels = images_to_inception_uint8(images).to(fid_metric.device)
    return fid_metric.inception(pixels).double().reshape(pixels.shape[0], -1)


class InceptionProgress:
    """Logs images/s once a minute: Inception runs at a few images per second on a CPU."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.started = self.last_report = time.perf_counter()

    def report(self, count: int) -> None:
        """Log how far along the feature extraction is, at most once a minute."""
        now = time.perf_counter()
        if now - self.last_report > PROGRESS_INTERVAL_SECONDS:
            self.last_report = now
            rate = count / (now - self.started)
            log.info("Inception features: %d/%s images (%.1f images/s)", count, self.total, rate)


@dataclass
class RealStatistics:
    """Mean (D,) and covariance (D, D) in float64 of Inception features of `count` images."""

    mean: Tensor
    covariance: Tensor
    count: int

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (temporary file in the same folder, then `os.replace`)."""
        state = {
            "mean": self.mean.detach().cpu().double(),
            "covariance": self.covariance.detach().cpu().double(),
            "count": int(self.count),
        }
        atomic_write(path, lambda file: torch.save(state, file))

    @classmethod
    def load(cls, path: str | os.PathLike) -> RealStatistics:
        """Read statistics written by `save`; a corrupt file is an error that names it."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"FID statistics file not found: {path}")
        try:
            state = safe_torch_load(path)
            mean, covariance, count = state["mean"], state["covariance"], int(state["count"])
            dim = mean.shape[0]
            if mean.ndim != 1 or covariance.shape != (dim, dim):
                raise ValueError(f"shapes {tuple(mean.shape)} and {tuple(covariance.shape)}")
        except Exception as error:
            raise RuntimeError(
                f"FID statistics cache file {path} is corrupt or unreadable ({error}); "
                "delete it to recompute the statistics"
            ) from error
        return cls(mean=mean.double(), covariance=covariance.double(), count=count)


def _zero_moments(dim: int) -> Tensor:
    return torch.zeros(1 + dim + dim * dim, dtype=torch.float64)


class FeatureMoments:
    """Running float64 sum and sum of outer products of feature rows, as one tensor `sums`
    (so ranks can add theirs up), giving the Gaussian statistics FID compares."""

    def __init__(self, dim: int | None = None) -> None:
        # [count, sum (D), sum of outer products (D * D)]; sized by the first rows when the
        # dimension is not given (ranks that add their sums up must give it).
        self.dim = dim
        self.sums = None if dim is None else _zero_moments(dim)

    @property
    def count(self) -> int:
        """Feature rows added so far."""
        return 0 if self.sums is None else int(self.sums[0])

    def update(self, features: Tensor) -> None:
        """Add (N, D) feature rows."""
        features = features.detach().double().cpu()
        dim = features.shape[1]
        if self.sums is None:
            self.dim, self.sums = dim, _zero_moments(dim)
        elif dim != self.dim:
            raise ValueError(f"FID features have {dim} dimensions, the statistics {self.dim}")
        self.sums[0] += features.shape[0]
        self.sums[1 : 1 + dim] += features.sum(dim=0)
        self.sums[1 + dim :] += (features.T @ features).flatten()

    def statistics(self) -> RealStatistics:
        """Mean and unbiased covariance of every row added."""
        count = self.count
        if count < 2 or self.sums is None or self.dim is None:
            raise ValueError(f"FID statistics need at least 2 images, got {count}")
        mean = self.sums[1 : 1 + self.dim] / count
        outer = self.sums[1 + self.dim :].reshape(self.dim, self.dim)
        # As FrechetInceptionDistance accumulates them: float64 sums, then the covariance.
        covariance = (outer - count * torch.outer(mean, mean)) / (count - 1)
        return RealStatistics(mean=mean, covariance=covariance, count=count)


def _feature_statistics(
    batches: Iterable[Tensor], fid_metric: FrechetInceptionDistance, max_count: int | None
) -> RealStatistics:
    """Gaussian statistics of the features of the first `max_count` images (all if None)."""
    if max_count is not None and max_count < 2:
        raise ValueError(f"max_count must be at least 2 (or None for all images), got {max_count}")
    moments = FeatureMoments()
    progress = InceptionProgress(max_count)
    for batch in batches:
        if max_count is not None:
            batch = batch[: max_count - moments.count]
        if batch.shape[0] == 0:
            continue
        moments.update(inception_features(batch, fid_metric))
        progress.report(moments.count)
        if moments.count == max_count:
            break  # before asking a (possibly generating) iterator for a batch it will not use
    if max_count is not None and 2 <= moments.count < max_count:
        message = f"FID statistics use {moments.count} images, fewer than max_count={max_count}"
        warnings.warn(message, stacklevel=3)  # point at the caller of the public function
    return moments.statistics()


def compute_real_statistics(
    batches: Iterable[Tensor], fid_metric: FrechetInceptionDistance, max_count: int | None = None
) -> RealStatistics:
    """Inception statistics of real [-1, 1] batches, stopping at exactly `max_count` images."""
    return _feature_statistics(batches, fid_metric, max_count)


def statistics_cache_path(cache_dir: str | os.PathLike, key: dict) -> Path:
    """Cache file for a key: a readable prefix from its values plus a sha1 of its sorted JSON."""
    encoded = json.dumps(key, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha1(encoded.encode("utf-8")).hexdigest()[:16]
    readable = "-".join(str(key[name]) for name in sorted(key))
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", readable).strip("._-")[:80] or "fid_stats"
    return Path(cache_dir) / f"{readable}-{digest}.pt"


def real_statistics_cached(
    cache_dir: str | os.PathLike,
    key: dict,
    compute: Callable[[], RealStatistics],
    save: bool = True,
) -> RealStatistics:
    """Real statistics loaded from the cache file for `key`, or computed (and saved there when
    `save`: in a distributed run only rank zero writes).

    The key names everything that changes the statistics (dataset, split, resolution, image
    `count`, feature extractor), so a different setting never reuses a file.
    """
    path = statistics_cache_path(cache_dir, {**key, "max_count": key["count"]})
    if path.is_file():
        return RealStatistics.load(path)
    statistics = compute()
    if save:
        statistics.save(path)
    return statistics


def real_features_cached(
    cache_dir: str | os.PathLike, key: dict, compute: Callable[[], Tensor], save: bool = True
) -> Tensor:
    """Real-image feature rows (N, D) (KID needs the features, not just their moments), loaded
    from the cache file for `key` or computed (and saved when `save`)."""
    path = statistics_cache_path(cache_dir, {**key, "kind": "features"})
    if path.is_file():
        try:
            return safe_torch_load(path)
        except Exception as error:
            raise RuntimeError(
                f"feature cache file {path} is corrupt or unreadable ({error}); delete it to "
                "recompute the features"
            ) from error
    features = compute()
    if save:
        atomic_write(path, lambda file: torch.save(features.cpu(), file))
    return features


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)), in float64."""
    mu1, sigma1, mu2, sigma2 = (t.detach().double().cpu() for t in (mu1, sigma1, mu2, sigma2))
    if sigma1.shape != sigma2.shape or mu1.shape != mu2.shape or sigma1.shape[0] != mu1.shape[0]:
        raise ValueError("means and covariances of both Gaussians must have matching shapes")
    # sigma1 = V diag(w) V^T, so sigma1 sigma2 has the eigenvalues of the symmetric PSD matrix
    # diag(w)^(1/2) V^T sigma2 V diag(w)^(1/2): real and, up to round-off (clamped), >= 0.
    eigenvalues, eigenvectors = torch.linalg.eigh(sigma1)
    half = eigenvectors * eigenvalues.clamp_min(0).sqrt()
    product = half.T @ sigma2 @ half
    trace_sqrt = torch.linalg.eigvalsh((product + product.T) / 2).clamp_min(0).sqrt().sum()
    distance = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt
    return float(distance)


def fid_against_real(
    fake_batches: Iterable[Tensor],
    real_stats: RealStatistics,
    fid_metric: FrechetInceptionDistance,
    max_count: int | None,
) -> tuple[float, int]:
    """FID of fake [-1, 1] batches (exactly `max_count` images) against cached real statistics."""
    fake = _feature_statistics(fake_batches, fid_metric, max_count)
    fid = frechet_distance(real_stats.mean, real_stats.covariance, fake.mean, fake.covariance)
    return fid, fake.count
