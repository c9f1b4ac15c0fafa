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

from invgan.utils.atomic import atomic_write

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
            state = torch.load(path, map_location="cpu", weights_only=True)
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


def _feature_statistics(
    batches: Iterable[Tensor], fid_metric: FrechetInceptionDistance, max_count: int | None
) -> RealStatistics:
    """Gaussian statistics of the features of the first `max_count` images (all if None)."""
    if max_count is not None and max_count < 2:
        raise ValueError(f"max_count must be at least 2 (or None for all images), got {max_count}")
    total = outer = None
    count = 0
    started = last_report = time.perf_counter()
    for batch in batches:
        if max_count is not None:
            batch = batch[: max_count - count]
        if batch.shape[0] == 0:
            continue
        features = inception_features(batch, fid_metric)
        if total is None:
            total = features.new_zeros(features.shape[1])
            outer = features.new_zeros(features.shape[1], features.shape[1])
        total += features.sum(dim=0)
        outer += features.T @ features
        count += features.shape[0]
        if time.perf_counter() - last_report > PROGRESS_INTERVAL_SECONDS:
            # Inception runs at a few images per second on a CPU: say how far along it is.
            last_report = time.perf_counter()
            rate = count / (last_report - started)
            log.info("Inception features: %d/%s images (%.1f images/s)", count, max_count, rate)
        if count == max_count:
            break  # before asking a (possibly generating) iterator for a batch it will not use
    if count < 2:
        raise ValueError(f"FID statistics need at least 2 images, got {count}")
    if max_count is not None and count < max_count:
        message = f"FID statistics use {count} images, fewer than max_count={max_count}"
        warnings.warn(message, stacklevel=3)  # point at the caller of the public function
    # Sum and sum of outer products in float64, as FrechetInceptionDistance accumulates them.
    mean = total / count
    covariance = (outer - count * torch.outer(mean, mean)) / (count - 1)
    return RealStatistics(mean=mean.cpu(), covariance=covariance.cpu(), count=count)


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
    batches_fn: Callable[[], Iterable[Tensor]],
    fid_metric: FrechetInceptionDistance,
    max_count: int | None,
) -> RealStatistics:
    """Real statistics loaded from the cache file for `key`, or computed and saved there.

    The key should name everything that changes the statistics (dataset, split, resolution,
    feature extractor); `max_count` is added to it so a different image count never reuses a file.
    """
    if "max_count" in key and key["max_count"] != max_count:
        raise ValueError(f"key has max_count={key['max_count']} but max_count={max_count}")
    path = statistics_cache_path(cache_dir, {**key, "max_count": max_count})
    if path.is_file():
        return RealStatistics.load(path)
    statistics = compute_real_statistics(batches_fn(), fid_metric, max_count)
    statistics.save(path)
    return statistics


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
