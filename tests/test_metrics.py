"""Metrics: Fréchet distance, FID, weights lookup, KID, MAE/MSE/PSNR/SSIM, run time."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image
from torchmetrics.functional.image import structural_similarity_index_measure
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import poly_mmd

from invgan.metrics.fid import (
    FeatureMoments,
    RealStatistics,
    compute_real_statistics,
    fid_against_real,
    frechet_distance,
    images_to_inception_uint8,
    real_features_cached,
    real_statistics_cached,
    statistics_cache_path,
)
from invgan.metrics.inception import (
    INCEPTION_WEIGHTS_ENV,
    INCEPTION_WEIGHTS_FILE,
    build_fid_metric,
    resolve_inception_weights,
)
from invgan.metrics.kid import kernel_inception_distance
from invgan.metrics.reconstruction import (
    ReconstructionErrorAccumulator,
    mean_absolute_error,
    per_image_reconstruction_errors,
    structural_similarity,
)
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
    key = {"dataset": "toy", "split": "train", "resolution": 8, "features": "stub-4", "count": 16}
    calls = []

    def compute(count: int = 16):
        calls.append(1)
        return compute_real_statistics(images.split(8), _StubFidMetric(), count)

    first = real_statistics_cached(tmp_path, key, compute)
    path = statistics_cache_path(tmp_path, {**key, "max_count": 16})
    assert path.is_file() and path.name.startswith("16-toy-stub-4-16-8-train-")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left

    again = real_statistics_cached(tmp_path, dict(reversed(key.items())), compute)
    assert len(calls) == 1  # served from the cache, in any key order
    assert again.count == first.count == 16
    assert torch.equal(again.mean, first.mean) and torch.equal(again.covariance, first.covariance)

    real_statistics_cached(tmp_path, {**key, "split": "test"}, compute)
    real_statistics_cached(tmp_path, {**key, "count": 10}, lambda: compute(10))
    assert len(calls) == 3 and len(list(tmp_path.iterdir())) == 3
    # Ranks other than zero compute but never write.
    real_statistics_cached(tmp_path, {**key, "split": "val"}, compute, save=False)
    assert len(calls) == 4 and len(list(tmp_path.iterdir())) == 3


def test_feature_cache_reloads_the_same_rows(tmp_path: Path) -> None:
    key = {"dataset": "toy", "count": 5}
    rows = torch.randn(5, 4)
    assert torch.equal(real_features_cached(tmp_path, key, lambda: rows), rows)
    reloaded = real_features_cached(tmp_path, key, lambda: pytest.fail("recomputed"))
    assert torch.equal(reloaded, rows)
    # Features and statistics of the same key live in different files.
    assert not statistics_cache_path(tmp_path, {**key, "max_count": 5}).is_file()


def test_feature_moments_split_and_summed_equal_one_pass() -> None:
    features = torch.randn(30, 4, dtype=torch.float64)
    whole = FeatureMoments()
    whole.update(features)
    first, second = FeatureMoments(4), FeatureMoments(4)
    first.update(features[:11])
    second.update(features[11:])
    first.sums += second.sums  # what an all-reduce over two ranks does
    statistics = first.statistics()
    assert statistics.count == 30
    torch.testing.assert_close(statistics.mean, features.mean(dim=0))
    torch.testing.assert_close(statistics.covariance, torch.cov(features.T))
    torch.testing.assert_close(statistics.covariance, whole.statistics().covariance)


def test_corrupt_statistics_cache_names_the_file(tmp_path: Path) -> None:
    key = {"dataset": "toy", "count": 4}
    path = statistics_cache_path(tmp_path, {**key, "max_count": 4})
    path.write_bytes(b"not a torch file")
    with pytest.raises(RuntimeError, match="delete it to recompute") as error:
        real_statistics_cached(tmp_path, key, lambda: pytest.fail("recomputed"))
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


def test_mse_and_psnr_hand_computed() -> None:
    x = torch.tensor([[[[0.5, -0.5], [0.1, 0.9]]], [[[1.0, -1.0], [0.0, 0.0]]]])
    x_hat = torch.tensor([[[[0.3, -0.3], [-0.1, 0.7]]], [[[-1.0, -1.0], [0.0, 0.0]]]])
    # image 0: every |difference| is 0.2 -> MAE 0.2, MSE 0.04, PSNR 10 log10(2^2 / 0.04) = 20 dB
    # image 1: differences 2, 0, 0, 0 -> MAE 0.5, MSE 4 / 4 = 1, PSNR 10 log10(4) = 6.0206 dB
    errors = per_image_reconstruction_errors(x, x_hat, ssim=False)
    assert set(errors) == {"mae", "mse", "psnr"}
    assert all(value.dtype == torch.float64 and value.shape == (2,) for value in errors.values())
    assert errors["mae"].tolist() == pytest.approx([0.2, 0.5], rel=1e-6)
    assert errors["mse"].tolist() == pytest.approx([0.04, 1.0], rel=1e-6)
    assert errors["psnr"].tolist() == pytest.approx([20.0, 6.020599913], rel=1e-6)
    assert per_image_reconstruction_errors(x, x, ssim=False)["psnr"].tolist() == [np.inf] * 2


def _gaussian_window_numpy(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    offsets = np.arange(size) - (size - 1) / 2
    weights = np.exp(-(offsets**2) / (2 * sigma**2))
    window = np.outer(weights, weights)
    return window / window.sum()


def _ssim_by_window_positions(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of two (C, H, W) arrays in [-1, 1], visiting every window that fits, one by one."""
    window = _gaussian_window_numpy()
    size = window.shape[0]
    c1, c2 = (0.01 * 2.0) ** 2, (0.03 * 2.0) ** 2
    values = []
    for a, b in zip(x, y, strict=True):
        for i in range(a.shape[0] - size + 1):
            for j in range(a.shape[1] - size + 1):
                pa, pb = a[i : i + size, j : j + size], b[i : i + size, j : j + size]
                mu_a, mu_b = (window * pa).sum(), (window * pb).sum()
                var_a = (window * (pa - mu_a) ** 2).sum()
                var_b = (window * (pb - mu_b) ** 2).sum()
                cov = (window * (pa - mu_a) * (pb - mu_b)).sum()
                values.append(
                    (2 * mu_a * mu_b + c1)
                    * (2 * cov + c2)
                    / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
                )
    return float(np.mean(values))


def test_ssim_of_identical_images_is_one() -> None:
    x = torch.rand(2, 3, 16, 12, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert structural_similarity(x, x).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)


def test_ssim_matches_numpy_window_loop() -> None:
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(1, 2, 16, 16, generator=generator) * 2 - 1
    x_hat = (x + 0.4 * torch.randn(1, 2, 16, 16, generator=generator)).clamp(-1, 1)
    expected = _ssim_by_window_positions(x[0].double().numpy(), x_hat[0].double().numpy())
    assert float(structural_similarity(x, x_hat)[0]) == pytest.approx(expected, abs=1e-10)


def test_ssim_matches_torchmetrics_valid_region() -> None:
    generator = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1
    x_hat = (x + 0.3 * torch.randn(2, 3, 32, 32, generator=generator)).clamp(-1, 1)
    # torchmetrics >= 1.5 averages the map of reflection-padded images over the full image;
    # its map cropped by the window's half-width (5 px) is the unpadded "valid" SSIM map.
    _, ssim_map = structural_similarity_index_measure(
        x_hat, x, data_range=2.0, reduction="none", return_full_image=True
    )
    expected = ssim_map[..., 5:-5, 5:-5].double().flatten(1).mean(1)
    torch.testing.assert_close(structural_similarity(x, x_hat), expected, rtol=0, atol=1e-6)


def test_ssim_rejects_images_smaller_than_its_window() -> None:
    x = torch.zeros(1, 1, 10, 16)
    with pytest.raises(ValueError, match=r"11 px window, got 10x16"):
        structural_similarity(x, x)
    with pytest.raises(ValueError, match="11 px window"):
        ReconstructionErrorAccumulator().update(x, x)
    accumulator = ReconstructionErrorAccumulator(ssim=False)
    accumulator.update(x, x + 0.5)
    assert accumulator.compute() == pytest.approx(
        {"mae": 0.5, "mse": 0.25, "psnr": 10 * np.log10(16.0)}, rel=1e-12
    )


def test_reconstruction_accumulator_is_split_invariant() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(7, 3, 12, 12, generator=generator) * 2 - 1
    x_hat = torch.rand(7, 3, 12, 12, generator=generator) * 2 - 1
    per_image = per_image_reconstruction_errors(x, x_hat)
    whole = {key: float(value.mean()) for key, value in per_image.items()}
    assert whole["mae"] == pytest.approx(float(mean_absolute_error(x, x_hat)), rel=1e-12)
    for sizes in ([7], [1] * 7, [2, 5], [4, 3]):
        accumulator = ReconstructionErrorAccumulator()
        for a, b in zip(x.split(sizes), x_hat.split(sizes), strict=True):
            accumulator.update(a, b)
        assert accumulator.count == 7
        assert accumulator.compute() == pytest.approx(whole, rel=1e-12, abs=0)
    # Two processes' states summed, as all_reduce does, give the single-process result.
    first, second = ReconstructionErrorAccumulator(), ReconstructionErrorAccumulator()
    first.update(x[:3], x_hat[:3])
    second.update(x[3:], x_hat[3:])
    first.sums += second.sums
    assert first.count == 7
    assert first.compute() == pytest.approx(whole, rel=1e-12, abs=0)
    first.reset()
    with pytest.raises(RuntimeError):
        first.compute()


# ---------------------------------------------------------------- KID


def _brute_force_unbiased_mmd2(real: np.ndarray, fake: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, summing pair by pair."""
    m, d = real.shape

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (float(a @ b) / d + 1.0) ** 3

    within = sum(k(s[i], s[j]) for s in (real, fake) for i in range(m) for j in range(m) if i != j)
    across = sum(k(real[i], fake[j]) for i in range(m) for j in range(m))
    return within / (m * (m - 1)) - 2 * across / m**2


def _feature_sets(n: int, d: int, shift: float = 0.0, seed: int = 0) -> tuple:
    generator = torch.Generator().manual_seed(seed)
    real = torch.randn(n, d, generator=generator, dtype=torch.float64)
    return real, torch.randn(n, d, generator=generator, dtype=torch.float64) + shift


def test_kid_matches_brute_force_pair_sums() -> None:
    real, fake = _feature_sets(6, 4, shift=0.5)
    mean, std = kernel_inception_distance(real, fake, subsets=1, subset_size=6)
    assert mean == pytest.approx(_brute_force_unbiased_mmd2(real.numpy(), fake.numpy()), rel=1e-12)
    assert std == 0.0


def test_kid_matches_torchmetrics_poly_mmd() -> None:
    real, fake = _feature_sets(20, 8, shift=0.3, seed=1)
    # With subset_size = n each subset is a permutation of the whole set, and MMD^2 does not
    # depend on the order of rows, so torchmetrics scores the same subset.
    mean, _ = kernel_inception_distance(real.float(), fake.float(), subsets=3, subset_size=20)
    assert mean == pytest.approx(float(poly_mmd(real, fake)), rel=1e-6)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_shifted() -> None:
    real, same = _feature_sets(300, 8)
    _, shifted = _feature_sets(300, 8, shift=1.0)
    settings = {"subsets": 20, "subset_size": 100}
    same_mean, _ = kernel_inception_distance(real, same, **settings)
    self_mean, _ = kernel_inception_distance(real, real, **settings)
    shifted_mean, shifted_std = kernel_inception_distance(real, shifted, **settings)
    # Two draws of one distribution: the estimate is unbiased, so only subset noise is left.
    assert abs(same_mean) < 0.02
    # A set against itself: real and fake subsets share about subset_size^2 / n rows, whose
    # large k(x, x) enter the cross term, so the mean sits a little below 0 (here ~ -0.05).
    assert abs(self_mean) < 0.1
    assert shifted_mean > 5.0 and shifted_mean > 5 * shifted_std


def test_kid_is_reproducible_and_accepts_small_sets() -> None:
    real, fake = _feature_sets(30, 4, shift=0.2)
    first = kernel_inception_distance(real, fake, subsets=5, subset_size=10, seed=3)
    assert kernel_inception_distance(real, fake, subsets=5, subset_size=10, seed=3) == first
    assert kernel_inception_distance(real, fake, subsets=5, subset_size=10, seed=4) != first
    # Fewer rows than subset_size: subsets shrink to the smaller set instead of raising.
    small = kernel_inception_distance(real[:12], fake[:12], subsets=2, subset_size=1000)
    assert small[0] == pytest.approx(float(poly_mmd(real[:12], fake[:12])), rel=1e-12)
    assert np.isfinite(kernel_inception_distance(real, fake[:12], subset_size=1000)[0])


@pytest.mark.parametrize("shapes", [((5, 4), (5, 3)), ((5,), (5,)), ((1, 4), (5, 4))])
def test_kid_rejects_bad_shapes(shapes: tuple) -> None:
    real, fake = (torch.zeros(shape) for shape in shapes)
    with pytest.raises(ValueError, match=r"real \(.*\) and fake \("):
        kernel_inception_distance(real, fake)


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
        "warmup",
        "repeats",
    }
    assert len(calls) == 7 and all(calls)
    assert result["batch_size"] == 4 and result["repeats"] == 5
    assert result["median_batch_seconds"] > 0
    assert result["seconds_per_image"] == pytest.approx(result["median_batch_seconds"] / 4)
    assert result["device"] == "cpu" and result["dtype"] == "torch.float32"
    assert result["num_threads"] >= 1 and result["torch_version"] == torch.__version__


def test_measure_seconds_per_item_is_the_median_of_the_timed_batches(monkeypatch) -> None:
    # A fake clock: warm-up batches take 100 s (and must not count), the timed ones 5, 1, 9,
    # 3 and 70 s, so the median batch takes 5 s (the mean would be 17.6).
    durations = iter([5.0, 1.0, 9.0, 3.0, 70.0])
    clock = {"now": 0.0}

    def fn(batch: torch.Tensor) -> None:
        clock["now"] += clock.pop("next", 100.0)

    def perf_counter() -> float:
        # Read before and after each timed batch: the first read queues the next duration.
        clock.setdefault("next", next(durations, 100.0))
        return clock["now"]

    monkeypatch.setattr("invgan.metrics.runtime.time.perf_counter", perf_counter)
    result = measure_seconds_per_item(fn, torch.ones(4, 1), warmup=2, repeats=5)
    assert result["median_batch_seconds"] == 5.0
    assert result["seconds_per_image"] == 5.0 / 4
