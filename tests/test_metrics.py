"""Metrics: Fréchet distance, FID against cached real statistics, weights lookup, MAE, run time."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image
from torchmetrics.image.fid import FrechetInceptionDistance

from invgan.metrics.fid import (
    RealStatistics,
    compute_real_statistics,
    fid_against_real,
    frechet_distance,
    images_to_inception_uint8,
    real_statistics_cached,
    statistics_cache_path,
)
from invgan.metrics.inception import (
    INCEPTION_WEIGHTS_ENV,
    INCEPTION_WEIGHTS_FILE,
    build_fid_metric,
    resolve_inception_weights,
)
from invgan.metrics.reconstruction import MeanAbsoluteErrorAccumulator, mean_absolute_error
from invgan.metrics.runtime import measure_seconds_per_item

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WEIGHTS = SHARED / "weights" / INCEPTION_WEIGHTS_FILE
DATA = SHARED / "data"
NUM_IMAGES = 24  # per set; Inception on 2 CPU cores manages ~10-20 images/s

needs_weights = pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"no local {WEIGHTS}")


def _load_folder(name: str, count: int, offset: int = 0, size: int = 64) -> torch.Tensor:
    """The sorted files [offset, offset + count) of a shared data folder as [-1, 1] images."""
    files = sorted((DATA / name).iterdir())[offset : offset + count]
    if len(files) < count:
        pytest.skip(f"need {count} images in {DATA / name}")
    arrays = [
        np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.BICUBIC)) for f in files
    ]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def _scipy_frechet(mu1, sigma1, mu2, sigma2) -> float:
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1 + sigma2 - 2 * covmean))


class _StubFidMetric:
    """Stands in for FrechetInceptionDistance: 4 cheap features, and records its calls."""

    device = torch.device("cpu")

    def __init__(self) -> None:
        self.seen = 0

    def inception(self, pixels: torch.Tensor) -> torch.Tensor:
        assert pixels.dtype == torch.uint8 and pixels.shape[1] == 3
        self.seen += pixels.shape[0]
        x = pixels.float() / 255.0
        return torch.stack(
            [x.mean((1, 2, 3)), x.std((1, 2, 3)), x[:, 0, 0, 0], x.amax((1, 2, 3))], 1
        )


@pytest.fixture(scope="module")
def fid_metric() -> FrechetInceptionDistance:
    if not WEIGHTS.is_file():
        pytest.skip(f"no local {WEIGHTS}")
    return build_fid_metric(str(WEIGHTS), "cpu")


@pytest.fixture(scope="module")
def image_sets() -> dict[str, torch.Tensor]:
    return {
        "faces_a": _load_folder("faces", NUM_IMAGES),
        "faces_b": _load_folder("faces", NUM_IMAGES, offset=1000),
        "natural": _load_folder("natural", NUM_IMAGES),
    }


@pytest.fixture(scope="module")
def faces_a_statistics(fid_metric, image_sets) -> RealStatistics:
    return compute_real_statistics(image_sets["faces_a"].split(10), fid_metric, None)


# ---------------------------------------------------------------- Fréchet distance


@pytest.mark.parametrize("dim", [2, 5, 16])
def test_frechet_distance_matches_scipy(dim: int) -> None:
    rng = np.random.default_rng(dim)
    a = rng.normal(size=(50, dim))
    b = rng.normal(size=(60, dim)) @ rng.normal(size=(dim, dim)) + 0.5
    mu1, sigma1 = a.mean(0), np.cov(a, rowvar=False)
    mu2, sigma2 = b.mean(0), np.cov(b, rowvar=False)
    expected = _scipy_frechet(mu1, sigma1, mu2, sigma2)
    got = frechet_distance(*(torch.from_numpy(t) for t in (mu1, sigma1, mu2, sigma2)))
    assert got == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_of_identical_statistics_is_zero() -> None:
    x = torch.randn(40, 8, dtype=torch.float64)
    mu, sigma = x.mean(0), torch.cov(x.T)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-9
    # a pure mean shift adds exactly ||delta||^2
    assert frechet_distance(mu, sigma, mu + 1.0, sigma) == pytest.approx(8.0, rel=1e-9)


# ---------------------------------------------------------------- image conversion


def test_images_to_inception_uint8_maps_range_and_repeats_gray() -> None:
    gray = torch.tensor([-1.0, -0.5, 0.0, 1.0, 1.2, -3.0]).reshape(1, 1, 2, 3)
    pixels = images_to_inception_uint8(gray)
    assert pixels.dtype == torch.uint8 and pixels.shape == (1, 3, 2, 3)
    # (x + 1) * 127.5 rounded: -0.5 -> 63.75 -> 64, 0 -> 127.5 -> 128 (round half to even)
    assert pixels[0, 0].flatten().tolist() == [0, 64, 128, 255, 255, 0]
    assert torch.equal(pixels[:, 0], pixels[:, 1]) and torch.equal(pixels[:, 0], pixels[:, 2])
    with pytest.raises(ValueError):
        images_to_inception_uint8(torch.zeros(1, 2, 4, 4))


# ---------------------------------------------------------------- FID with real Inception


@pytest.fixture(scope="module")
def natural_fid(fid_metric, image_sets, faces_a_statistics) -> tuple[float, int]:
    return fid_against_real(image_sets["natural"].split(10), faces_a_statistics, fid_metric, None)


def test_fid_separates_faces_from_natural_images(
    fid_metric, image_sets, faces_a_statistics, natural_fid
) -> None:
    faces_fid, faces_count = fid_against_real(
        image_sets["faces_b"].split(16), faces_a_statistics, fid_metric, None
    )
    assert faces_count == NUM_IMAGES
    # measured at 24 images per set: about 143 (faces/faces) and 358 (faces/natural)
    assert 0 < faces_fid < 0.6 * natural_fid[0]


def test_fid_against_real_equals_torchmetrics(image_sets, faces_a_statistics, natural_fid) -> None:
    real, fake = image_sets["faces_a"], image_sets["natural"]
    ours, count = natural_fid

    reference = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(WEIGHTS))
    reference.update(images_to_inception_uint8(real), real=True)
    reference.update(images_to_inception_uint8(fake), real=False)
    assert count == fake.shape[0]
    assert ours == pytest.approx(float(reference.compute()), rel=1e-3)
    # identical features, not only an identical score
    expected_mean = reference.real_features_sum / reference.real_features_num_samples
    torch.testing.assert_close(faces_a_statistics.mean, expected_mean, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- counting and caching


def test_statistics_stop_exactly_at_max_count() -> None:
    images = torch.rand(30, 1, 8, 8) * 2 - 1
    stub = _StubFidMetric()
    pulled = []

    def batches():
        for batch in images.split(5):
            pulled.append(batch.shape[0])
            yield batch

    stats = compute_real_statistics(batches(), stub, max_count=12)
    assert stats.count == 12 and stub.seen == 12
    assert len(pulled) == 3  # the generator is not asked for a batch it will not use
    whole = compute_real_statistics([images[:12]], _StubFidMetric(), None)
    torch.testing.assert_close(stats.mean, whole.mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(stats.covariance, whole.covariance, rtol=0, atol=1e-12)
    assert stats.mean.dtype == stats.covariance.dtype == torch.float64

    fid, count = fid_against_real(images.split(7), whole, _StubFidMetric(), max_count=12)
    assert count == 12 and abs(fid) < 1e-9


def test_statistics_cache_saves_reloads_and_is_keyed(tmp_path: Path) -> None:
    images = torch.rand(20, 3, 8, 8) * 2 - 1
    key = {"dataset": "toy", "split": "train", "resolution": 8, "features": "stub-4"}
    calls = []

    def batches_fn():
        calls.append(1)
        return images.split(8)

    first = real_statistics_cached(tmp_path, key, batches_fn, _StubFidMetric(), 16)
    path = statistics_cache_path(tmp_path, {**key, "max_count": 16})
    assert path.is_file() and path.name.startswith("toy-stub-4-16-8-train-")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left

    again = real_statistics_cached(tmp_path, dict(reversed(key.items())), batches_fn, None, 16)
    assert len(calls) == 1  # served from the cache, in any key order
    assert again.count == first.count == 16
    assert torch.equal(again.mean, first.mean) and torch.equal(again.covariance, first.covariance)

    other = {**key, "split": "test"}
    real_statistics_cached(tmp_path, other, batches_fn, _StubFidMetric(), 16)
    real_statistics_cached(tmp_path, key, batches_fn, _StubFidMetric(), 10)
    assert len(calls) == 3 and len(list(tmp_path.iterdir())) == 3


def test_corrupt_statistics_cache_names_the_file(tmp_path: Path) -> None:
    key = {"dataset": "toy"}
    path = statistics_cache_path(tmp_path, {**key, "max_count": 4})
    path.write_bytes(b"not a torch file")
    with pytest.raises(RuntimeError, match="delete it to recompute") as error:
        real_statistics_cached(tmp_path, key, lambda: [], _StubFidMetric(), 4)
    assert str(path) in str(error.value)


# ---------------------------------------------------------------- weights lookup


@pytest.fixture
def empty_environment(monkeypatch, tmp_path: Path) -> Path:
    """No env variable and an empty torch hub folder; downloading fails instead of happening."""
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))

    def no_download(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    import torch_fidelity.feature_extractor_inceptionv3 as fidelity

    monkeypatch.setattr(fidelity, "load_state_dict_from_url", no_download)
    return hub


def test_resolve_inception_weights_order(empty_environment: Path, monkeypatch, tmp_path) -> None:
    explicit, from_env = tmp_path / "explicit.pth", tmp_path / "env.pth"
    explicit.touch()
    from_env.touch()
    assert resolve_inception_weights(None) is None

    cached = empty_environment / "checkpoints" / INCEPTION_WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    cached.touch()
    assert resolve_inception_weights(None) == str(cached)

    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(from_env))
    assert resolve_inception_weights(None) == str(from_env)
    assert resolve_inception_weights(str(explicit)) == str(explicit)

    missing = tmp_path / "missing.pth"
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        resolve_inception_weights(str(missing))
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(missing))
    with pytest.raises(FileNotFoundError, match=INCEPTION_WEIGHTS_ENV):
        resolve_inception_weights(None)


def test_build_fid_metric_without_weights_explains_the_fix(empty_environment: Path) -> None:
    with pytest.raises(RuntimeError, match="could not be downloaded") as error:
        build_fid_metric(None, "cpu")
    message = str(error.value)
    assert INCEPTION_WEIGHTS_ENV in message and "metrics.fid.weights_path" in message
    assert str(empty_environment / "checkpoints") in message


@needs_weights
def test_build_fid_metric_from_env(empty_environment: Path, monkeypatch) -> None:
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(WEIGHTS))
    metric = build_fid_metric(None, "cpu")
    assert metric.reset_real_features is False
    assert metric.inception.features_list == ["2048"]


# ---------------------------------------------------------------- MAE


def test_mean_absolute_error_hand_computed() -> None:
    x = torch.tensor([[[[1.0, -1.0], [0.5, 0.0]]]])
    x_hat = torch.tensor([[[[0.0, -1.0], [-0.5, 0.25]]]])
    # |1| + 0 + |1| + |0.25| = 2.25 over 4 values
    assert float(mean_absolute_error(x, x_hat)) == pytest.approx(0.5625, abs=1e-12)
    two = torch.cat([x, -x]), torch.cat([x_hat, torch.ones_like(x_hat)])
    # second image: |-1-1| + |1-1| + |-0.5-1| + |0-1| = 4.5 over 4 -> overall (2.25 + 4.5) / 8
    assert float(mean_absolute_error(*two)) == pytest.approx(6.75 / 8, abs=1e-12)
    with pytest.raises(ValueError):
        mean_absolute_error(x, x_hat[..., :1])


def test_mean_absolute_error_accumulator_is_split_invariant() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(23, 3, 8, 8, generator=generator) * 2 - 1
    x_hat = torch.rand(23, 3, 8, 8, generator=generator) * 2 - 1
    whole = float(mean_absolute_error(x, x_hat))
    for sizes in ([23], [1] * 23, [5, 7, 11], [20, 3]):
        accumulator = MeanAbsoluteErrorAccumulator()
        for a, b in zip(x.split(sizes), x_hat.split(sizes), strict=True):
            accumulator.update(a, b)
        assert accumulator.count == 23
        assert accumulator.compute() == pytest.approx(whole, rel=1e-12, abs=0)
    accumulator.reset()
    with pytest.raises(RuntimeError):
        accumulator.compute()


# ---------------------------------------------------------------- run time


def test_measure_seconds_per_item_reports_settings() -> None:
    calls = []

    def fn(batch: torch.Tensor) -> torch.Tensor:
        calls.append(torch.is_inference_mode_enabled())
        return batch.square().sum()

    result = measure_seconds_per_item(fn, torch.ones(4, 3, 8, 8), warmup=2, repeats=5)
    assert set(result) == {
        "seconds_per_image",
        "median_batch_seconds",
        "batch_size",
        "device",
        "dtype",
        "torch_version",
        "num_threads",
        "repeats",
    }
    assert len(calls) == 7 and all(calls)
    assert result["batch_size"] == 4 and result["repeats"] == 5
    assert result["median_batch_seconds"] > 0
    assert result["seconds_per_image"] == pytest.approx(result["median_batch_seconds"] / 4)
    assert result["device"] == "cpu" and result["dtype"] == "torch.float32"
    assert result["num_threads"] >= 1 and result["torch_version"] == torch.__version__
