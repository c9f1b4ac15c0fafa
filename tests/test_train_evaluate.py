"""train.py and evaluate.py composed from the real conf/: runs, checkpoints, metrics, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from omegaconf import open_dict

from invgan.evaluation.pipeline import evaluate
from invgan.training.pipeline import train
from invgan.utils.config_checks import ConfigValueError
from tests.conftest import CONFIG_DIR, INCEPTION_WEIGHTS, REPO_ROOT, compose_config

EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
# The shared folder standing in for each experiment's dataset (MNIST is there under its name).
SHARED_STAND_INS = {
    "celeba_stylegan_invgan": "faces",
    "ffhq_stylegan_invgan": "faces",
    "imagenet_biggan_patches": "natural",
    "celeba_psp": "faces",
    "ffhq_psp": "faces",
    "celeba_indomain": "faces",
    "celeba_restyle": "faces",
    "celeba_e4e": "faces",
    "ffhq_e4e": "faces",
    "ffhq_restyle": "faces",
}
# Encoder recipes invert the shared 16-px face generator; ffhq_psp's identity loss needs
# ArcFace weights that the shared folder does not have.
ENCODER_RECIPES = {
    "celeba_psp": [],
    "ffhq_psp": ["model.id_weight=0", "model.encoder.backbone_weights=null"],
    "celeba_indomain": [],
    "celeba_restyle": [],
    "celeba_e4e": [],
    "ffhq_e4e": ["model.id_weight=0", "model.encoder.backbone_weights=null"],
    "ffhq_restyle": ["model.id_weight=0", "model.encoder.backbone_weights=null"],
}


def stand_in_overrides(experiment: str, shared_data: Path, request) -> list[str]:
    """Overrides that run `experiment` on the shared stand-in data (encoder recipes: over the
    shared 16-px face generator)."""
    stand_in = SHARED_STAND_INS.get(experiment)
    overrides = [f"data.root={shared_data / stand_in}"] if stand_in else []
    if experiment in ENCODER_RECIPES:
        generator = request.getfixturevalue("face_generator_checkpoint")
        overrides += [
            f"model.generator.path={generator}",
            "data.resolution=16",
            *ENCODER_RECIPES[experiment],
        ]
    return overrides


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_fast_dev_run_of_every_experiment(experiment, train_config, shared_data, request):
    overrides = stand_in_overrides(experiment, shared_data, request)
    cfg = train_config(f"experiment={experiment}", "debug=fdr", "data.batch_size=4", *overrides)
    metrics = train(cfg)
    assert "test/mae" in metrics
    assert any(name.startswith("train/loss") for name in metrics)


def test_train_then_evaluate_writes_every_metric(train_config, tmp_path):
    cfg = train_config(
        "data=synthetic", "trainer.max_epochs=2", "callbacks.image_grids.every_n_iterations=8"
    )
    metrics = train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    assert last.is_file()
    assert sorted(p.name for p in (run_dir / "images").glob("*.png"))[-1].startswith("samples_")
    assert metrics["val/mae"] > 0
    assert metrics["time/images_per_second"] > 0  # also on the progress bar

    eval_dir = tmp_path / "eval"
    eval_cfg = compose_config(
        "evaluate",
        [
            f"ckpt_path={last}",
            f"metrics.fid.weights_path={INCEPTION_WEIGHTS}",
            "metrics.fid.num_samples=16",
            "metrics.fid.real_count=32",
            "metrics.kid.real_count=32",
            "metrics.runtime.batch_size=32",
            "metrics.runtime.repeats=2",
            "device=cpu",
        ],
        eval_dir,
    )
    report = evaluate(eval_cfg)
    written = json.loads((eval_dir / "metrics.json").read_text())
    assert written == json.loads(json.dumps(report))
    assert written["cuda"] == {"tf32_matmul": True, "tf32_cudnn": True, "cudnn_benchmark": True}
    streams = ("rand", "rand_rec", "ts_rec", "int_ts")
    expected = {
        *(f"test/{name}" for name in ("mae", "mse", "psnr", "ssim", "lpips_alex", "lpips_vgg")),
        "test/reconstruction_seconds_per_image",
        *(f"test/{stream}_{kind}_16" for stream in streams for kind in ("fid", "kid")),
        "test/inversion_seconds_per_image",
    }
    assert set(written["metrics"]) == expected
    for name, entry in written["metrics"].items():
        assert "protocol" in entry, name
        if "_kid_" not in name:  # an unbiased estimate: may dip below 0 for close sets
            assert entry["value"] > 0, name
    assert written["metrics"]["test/rand_fid_16"]["count"] == 16
    assert written["metrics"]["test/rand_kid_16"]["real_count"] == 32
    assert written["metrics"]["test/inversion_seconds_per_image"]["batch_size"] == 32
    # The paper-layout table and the Figure 5 grid (3 rows: images, reconstructions, errors).
    table = (eval_dir / "table.md").read_text()
    assert "| model | RandFID (16) | RandRecFID (16) | TsRecFID (16) | IntTsFID (16) |" in table
    grid = torchvision.io.read_image(str(eval_dir / "reconstructions.png"))
    assert grid.shape[1] == 3 * (int(cfg.data.resolution) + 2) + 2
    # The checkpoint reloads to the weights that produced the run's own test MAE.
    assert written["metrics"]["test/mae"]["value"] == pytest.approx(
        _mae_of_checkpoint(cfg, last), rel=1e-5
    )


def _mae_of_checkpoint(cfg, checkpoint_path: Path) -> float:
    """Test MAE recomputed directly from the checkpoint's state dict."""
    import hydra

    from invgan.utils.images import to_signed_range

    model = hydra.utils.instantiate(cfg.model)
    model.load_state_dict(torch.load(checkpoint_path, weights_only=True)["state_dict"])
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup()
    images = to_signed_range(torch.stack(list(datamodule.test_dataset)))
    with torch.no_grad():
        return float((model.eval().reconstruct(images) - images).abs().mean())


def test_unknown_config_key_fails_with_hydras_message():
    result = subprocess.run(
        [sys.executable, "train.py", "model.loss.not_a_loss=1", "data=synthetic"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Could not override 'model.loss.not_a_loss'" in result.stderr


def test_bad_value_fails_before_training(train_config):
    cfg = train_config("data=synthetic", "model.loss.mmd_weight=-1")
    with pytest.raises(ConfigValueError, match="model.loss.mmd_weight=-1: must be >= 0"):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()


def test_missing_data_dir_names_files_and_fix(train_config, tmp_path, monkeypatch):
    monkeypatch.setenv("INVGAN_DATA_DIR", str(tmp_path / "nowhere"))
    cfg = train_config("data=mnist", "data.download=false", "debug=fdr")
    with pytest.raises(FileNotFoundError) as error:
        train(cfg)
    message = str(error.value)
    assert "train-images-idx3-ubyte" in message and "data.download=true" in message


def test_evaluate_refuses_a_missing_checkpoint(tmp_path):
    cfg = compose_config("evaluate", [f"ckpt_path={tmp_path / 'none.ckpt'}"], tmp_path)
    with open_dict(cfg):
        cfg.device = "cpu"
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        evaluate(cfg)


def test_last_checkpoint_is_the_final_state_after_a_mid_epoch_stop(train_config):
    # 16 iterations an epoch; max_steps counts two optimizer steps per iteration.
    cfg = train_config(
        "data=synthetic", "trainer.max_epochs=5", "trainer.max_steps=50", "test=false"
    )
    train(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)
    assert int(state["state_dict"]["iteration"]) == 25 and state["global_step"] == 50
    assert not list(last.parent.glob(".*.tmp"))

    with open_dict(cfg):
        cfg.ckpt_path = str(last)
        cfg.trainer.max_steps = 60
    train(cfg)
    assert int(torch.load(last, weights_only=True)["state_dict"]["iteration"]) == 30
