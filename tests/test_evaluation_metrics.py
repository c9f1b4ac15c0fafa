"""The registry of named metrics: the names it holds, how `metrics.which` and the
`metrics.<block>.enabled` switches select them, that a metric added in one file runs, and that
metrics reading the same images share one pass."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from invgan.evaluation.evaluator import EvaluationResult, Evaluator
from invgan.evaluation.metrics import METRICS, Metric, metric_names, register, select_metrics
from invgan.evaluation.metrics.base import Entry, MetricContext, StreamPass
from invgan.evaluation.pipeline import evaluate
from invgan.evaluation.streams import StreamBatch
from invgan.inversion.encoder import EncoderInversion
from invgan.training.pipeline import train
from invgan.utils.config_checks import ConfigValueError
from tests.conftest import compose_config
from tests.test_evaluation import SIZE, RecordingModel, images_datamodule

RECONSTRUCTION = ["reconstruction_seconds_per_image", "mae", "mse", "psnr", "ssim"]
FIDS = ["rand_fid", "rand_rec_fid", "ts_rec_fid", "int_ts_fid"]
KIDS = ["rand_kid", "rand_rec_kid", "ts_rec_kid", "int_ts_kid"]
EVERY = [*RECONSTRUCTION, "lpips", "tiled_mae", *FIDS, *KIDS, "inversion_seconds_per_image"]


def _metrics_cfg(tmp_path: Path, *overrides: str) -> Any:
    """conf/evaluate.yaml's `metrics` tree with command-line overrides."""
    return compose_config("evaluate", ["ckpt_path=unused.ckpt", *overrides], tmp_path).metrics


def _run(
    metrics: Mapping[str, Mapping[str, Any]], images: torch.Tensor, grid_count: int = 0
) -> tuple[EvaluationResult, RecordingModel]:
    """The metrics of the recording model on test `images` in [0, 1] (batches of 4)."""
    model = RecordingModel()
    evaluator = Evaluator(
        model,
        EncoderInversion(model),
        images_datamodule(images),
        metrics=metrics,
        seed=7,
        grid_count=grid_count,
    )
    return evaluator.run(), model


@pytest.fixture
def restored_registry() -> Iterator[None]:
    """Metrics a test registers are gone after it."""
    saved = dict(METRICS)
    yield
    METRICS.clear()
    METRICS.update(saved)


def test_registry_lists_every_metric_by_its_result_key():
    assert metric_names() == EVERY


# Command lines of README.md, docs/ and benchmarks/ (metrics.<block>.* switches) and what runs.
SWITCHES = {
    "": EVERY,
    "metrics.fid.enabled=false": [*RECONSTRUCTION, "lpips", "tiled_mae", EVERY[-1]],
    "metrics.kid.enabled=false": [*RECONSTRUCTION, "lpips", "tiled_mae", *FIDS, EVERY[-1]],
    "metrics.fid.which=[rand_fid,ts_rec_fid]": [
        *RECONSTRUCTION,
        "lpips",
        "tiled_mae",
        "rand_fid",
        "ts_rec_fid",
        "rand_kid",
        "ts_rec_kid",
        EVERY[-1],
    ],
    "metrics.runtime.enabled=false metrics.lpips.enabled=false": EVERY[:5] + EVERY[6:-1],
    # LPIPS scores the reconstruction metrics' images: off with them.
    "metrics.reconstruction.enabled=false metrics.tiled_mae.enabled=false": EVERY[7:],
}


@pytest.mark.parametrize("overrides", sorted(SWITCHES))
def test_enabled_switches_select_as_before(overrides, tmp_path):
    selected = select_metrics(_metrics_cfg(tmp_path, *overrides.split()))
    assert list(selected) == SWITCHES[overrides]


def test_block_options_reach_their_metrics(tmp_path):
    overrides = [
        "metrics.fid.num_samples=[500,50000]",
        "metrics.lpips.nets=[alex]",
        "metrics.runtime.batch_size=16",
        "metrics.reconstruction.max_images=8",
        "metrics.kid.real_count=2000",
    ]
    selected = select_metrics(_metrics_cfg(tmp_path, *overrides))
    assert selected["ts_rec_fid"]["num_samples"] == [500, 50000]
    assert selected["ts_rec_kid"]["num_samples"] == [500, 50000]  # KID scores FID's images
    assert selected["ts_rec_kid"]["real_count"] == 2000
    assert selected["lpips"]["nets"] == ["alex"]
    assert selected["lpips"]["max_images"] == 8 == selected["mae"]["max_images"]
    assert selected["inversion_seconds_per_image"]["batch_size"] == 16


def test_metrics_which_runs_only_the_metrics_it_names(tmp_path):
    selected = select_metrics(_metrics_cfg(tmp_path, "metrics.which=[psnr,mae]"))
    assert list(selected) == ["mae", "psnr"]
    images = torch.rand(10, 3, SIZE, SIZE)
    result, model = _run(selected, images)
    assert list(result.metrics) == ["test/mae", "test/psnr"]
    # The recording model reconstructs each image as its channel means.
    signed = images * 2 - 1
    expected = (signed - signed.mean(dim=(2, 3), keepdim=True)).abs().mean()
    assert result.metrics["test/mae"]["value"] == pytest.approx(float(expected), rel=1e-6)
    assert result.metrics["test/mae"]["count"] == 10
    # Both read one pass: each batch of 4 test images was inverted once.
    assert [images.shape[0] for images in model.encoded] == [4, 4, 2]


def test_an_unknown_metric_name_is_refused_with_the_known_ones(tmp_path):
    with pytest.raises(ConfigValueError) as error:
        select_metrics(_metrics_cfg(tmp_path, "metrics.which=[mae,nope]"))
    message = str(error.value)
    assert message.startswith("metrics.which: unknown ['nope']")
    assert str(EVERY) in message and "metrics.which=null" in message
    with pytest.raises(ConfigValueError, match=r"metrics.which='mae': must be a list"):
        select_metrics(_metrics_cfg(tmp_path, "metrics.which=mae"))
    # evaluate() refuses it before loading anything: the checkpoint does not even exist.
    cfg = compose_config(
        "evaluate", ["ckpt_path=missing.ckpt", "metrics.which=[nope]"], tmp_path / "eval"
    )
    with pytest.raises(ConfigValueError, match=r"metrics.which: unknown \['nope'\]"):
        evaluate(cfg)
    assert not (tmp_path / "eval").exists()


def test_a_metric_added_in_one_file_appears_in_the_results(restored_registry, tmp_path):
    @register
    class MeanBrightness(Metric):
        """Mean pixel of the first `max_images` test images."""

        name = "mean_brightness"
        block = "brightness"
        streams = ("test_images",)

        @classmethod
        def plan(cls, context: MetricContext, options: Mapping[str, Any]) -> list[StreamPass]:
            return [cls.stream_pass("test_images", options["max_images"])]

        def __init__(
            self, context: MetricContext, options: Mapping[str, Any], walk: StreamPass
        ) -> None:
            super().__init__(context, options, walk)
            self.sums = torch.zeros(2, dtype=torch.float64)

        def update(self, batch: StreamBatch) -> None:
            self.sums += torch.tensor([float(batch.images.sum()), batch.images.numel()])

        def result(self) -> dict[str, Entry]:
            total, count = self.context.world.sum(self.sums).tolist()
            return {f"test/{self.name}": {"value": total / count, "protocol": "mean pixel"}}

    with pytest.raises(ValueError, match="two metrics are named 'mae'"):
        register(type("AnotherMAE", (MeanBrightness,), {"name": "mae"}))
    block = ["+metrics.brightness.enabled=true", "+metrics.brightness.max_images=6"]
    assert "mean_brightness" in select_metrics(_metrics_cfg(tmp_path, *block))
    selected = select_metrics(
        _metrics_cfg(tmp_path, *block, "metrics.which=[mean_brightness,mae]")
    )
    assert list(selected) == ["mae", "mean_brightness"]
    images = torch.rand(10, 3, SIZE, SIZE)
    result, _ = _run(selected, images)
    assert set(result.metrics) == {"test/mae", "test/mean_brightness"}
    expected = float((images[:6] * 2 - 1).mean())
    assert result.metrics["test/mean_brightness"]["value"] == pytest.approx(expected)
    # Selected by name, a metric without its config block is refused naming the block.
    with pytest.raises(ConfigValueError, match=r"metrics.brightness, which the config lacks"):
        select_metrics(_metrics_cfg(tmp_path, "metrics.which=[mean_brightness]"))


def test_the_grid_comes_back_in_the_result_from_the_reconstruction_pass(tmp_path):
    metrics_cfg = _metrics_cfg(tmp_path, "metrics.runtime.warmup=0", "metrics.runtime.repeats=1")
    selected = select_metrics(metrics_cfg)
    images = torch.rand(10, 3, SIZE, SIZE)
    result, _ = _run({"mae": selected["mae"]}, images, grid_count=3)
    assert result.grid_pairs is not None
    test_images, reconstructions = result.grid_pairs
    torch.testing.assert_close(test_images, images[:3] * 2 - 1)
    torch.testing.assert_close(
        reconstructions, test_images.mean(dim=(2, 3), keepdim=True).expand(-1, -1, SIZE, SIZE)
    )
    # No reconstruction metric, no grid (the runtime reads test images, not reconstructions).
    runtime = {"inversion_seconds_per_image": selected["inversion_seconds_per_image"]}
    assert _run(runtime, images, grid_count=3)[0].grid_pairs is None
    assert _run({"mae": selected["mae"]}, images, grid_count=0)[0].grid_pairs is None


def test_evaluate_with_metrics_which_writes_only_those_metrics(train_config, tmp_path):
    cfg = train_config(
        "data=synthetic",
        "data.resolution=16",
        "data.channels=3",
        "debug=fdr",
        "trainer.fast_dev_run=false",
        "trainer.max_steps=2",
        "trainer.limit_val_batches=1",
        "test=false",
    )
    train(cfg)
    common = [
        f"ckpt_path={Path(cfg.paths.output_dir) / 'checkpoints' / 'last.ckpt'}",
        "device=cpu",
        "batch_size=8",
        "metrics.reconstruction.max_images=12",
    ]
    some = evaluate(
        compose_config("evaluate", [*common, "metrics.which=[psnr,mae]"], tmp_path / "a")
    )
    written = json.loads((tmp_path / "a" / "metrics.json").read_text())["metrics"]
    assert list(some["metrics"]) == list(written) == ["test/mae", "test/psnr"]
    assert (tmp_path / "a" / "reconstructions.png").is_file()
    switches = ["metrics.fid.enabled=false", "metrics.runtime.enabled=false"]
    lpips = ["metrics.lpips.nets=[alex]"]
    full = evaluate(compose_config("evaluate", [*common, *switches, *lpips], tmp_path / "b"))
    assert list(full["metrics"]) == [f"test/{name}" for name in RECONSTRUCTION] + [
        "test/lpips_alex"
    ]
    for name, entry in some["metrics"].items():
        assert entry == full["metrics"][name]
