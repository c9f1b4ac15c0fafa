"""Untrusted and broken inputs, fed for real: files that would run code when unpickled, the
safetensors export, unusable checkpoints and config values, an evaluation that fails midway,
and user-given paths that a shell would interpret."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch
from omegaconf import open_dict

from invgan.checkpoints.arcface import read_arcface_weights
from invgan.checkpoints.format import CheckpointError, load_checkpoint, save_safetensors
from invgan.checkpoints.generator_import import load_frozen_generator
from invgan.checkpoints.keys import CONFIG_KEY
from invgan.cli.export import export
from invgan.evaluation.metrics import METRICS
from invgan.evaluation.pipeline import METRICS_FILE, evaluate
from invgan.losses.perceptual import PerceptualDistance
from invgan.metrics.fid import RealStatistics, real_features_cached, statistics_cache_path
from invgan.metrics.inception import build_fid_metric
from invgan.training.pipeline import train
from invgan.utils.config_checks import ConfigValueError
from tests.conftest import CPU_RUN, REPO_ROOT, TINY_MODELS, compose_config

# A tiny DCGAN InvGAN on synthetic data: 2 iterations, no test pass (seconds on a CPU).
TINY_RUN = [
    *CPU_RUN,
    *TINY_MODELS["DCGANGenerator"],
    "data=synthetic",
    "data.num_train=32",
    "data.num_val=16",
    "data.num_test=16",
    "trainer.max_steps=4",
    "test=false",
]
# Evaluation without Inception: reconstruction errors and LPIPS-alex (and timing when asked).
QUICK_EVALUATION = ["metrics.fid.enabled=false", "metrics.lpips.nets=[alex]", "device=cpu"]


class CreatesMarker:
    """Unpickling this calls `open(path, "w")`, creating `path`: code run by loading data."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str]]:
        return (open, (self.path, "w"))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """last.ckpt of a 2-iteration run of the tiny DCGAN InvGAN."""
    run_dir = tmp_path_factory.mktemp("tiny_run")
    train(compose_config("train", TINY_RUN, run_dir))
    return run_dir / "checkpoints" / "last.ckpt"


def _evaluate(ckpt_path: Path, out: Path, runtime: bool = False) -> dict[str, Any]:
    overrides = [f"ckpt_path={ckpt_path}", f"metrics.runtime.enabled={runtime}"]
    return evaluate(compose_config("evaluate", [*overrides, *QUICK_EVALUATION], out))


# ------------------------------------------------------------------ 1. untrusted files
FEATURES_KEY = {"dataset": "faces", "split": "train", "count": 8}


def _features_cache_file(directory: Path) -> Path:
    return statistics_cache_path(directory, {**FEATURES_KEY, "kind": "features"})


def _load_cached_features(path: Path) -> Any:
    return real_features_cached(path.parent, FEATURES_KEY, compute=lambda: pytest.fail("computed"))


# loader, and the text its error must contain.
LOADERS = {
    "load_checkpoint": (load_checkpoint, "refusing to load"),
    "load_frozen_generator": (load_frozen_generator, "refusing to load"),
    "lpips_weights": (lambda path: PerceptualDistance("alex", path), "refusing to load"),
    "inception_weights": (lambda path: build_fid_metric(str(path)), "refusing to load"),
    "fid_statistics_cache": (RealStatistics.load, "corrupt or unreadable"),
    "kid_feature_cache": (_load_cached_features, "corrupt or unreadable"),
    "arcface_weights": (read_arcface_weights, "refusing to load"),
}


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_file_that_would_run_code_is_refused_by_every_loader(loader, tmp_path):
    marker = tmp_path / "code_ran"
    evil = _features_cache_file(tmp_path) if loader == "kid_feature_cache" else tmp_path / "x.pt"
    # Shaped like what each loader expects, so that only the payload can make it refuse.
    payload = CreatesMarker(marker)
    torch.save({"state_dict": {}, CONFIG_KEY: "", "g_ema": {}, "mean": payload}, evil)
    load, message = LOADERS[loader]
    with pytest.raises(Exception, match=message) as error:
        load(evil)
    assert not marker.exists(), "the payload ran"
    if message == "refusing to load":
        assert "could run code" in str(error.value) and str(evil) in str(error.value)
    # The payload is live: an unsafe load runs it.
    torch.load(evil, weights_only=False)["mean"].close()
    assert marker.exists()


# ------------------------------------------------------------------ 2. safetensors export
def test_exported_safetensors_evaluates_like_the_checkpoint(tiny_run, tmp_path):
    last = tiny_run
    out = tmp_path / "model.safetensors"
    command = [sys.executable, "-m", "invgan.export", f"ckpt_path={last}", f"out={out}"]
    run = [*command, f"hydra.run.dir={tmp_path / 'export_run'}"]
    result = subprocess.run(run, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    with safetensors.safe_open(str(out), framework="pt") as file:
        assert file.metadata()[CONFIG_KEY] == load_checkpoint(last)[CONFIG_KEY]

    from_ckpt = _evaluate(last, tmp_path / "eval_ckpt")["metrics"]
    from_export = _evaluate(out, tmp_path / "eval_export")["metrics"]
    assert from_export["test/mae"]["value"] == from_ckpt["test/mae"]["value"]
    assert from_export["test/lpips_alex"]["value"] == from_ckpt["test/lpips_alex"]["value"]
    # The generator loader takes the exported file too.
    frozen = load_frozen_generator(out)
    state = load_checkpoint(last)["state_dict"]
    assert torch.equal(frozen.generator.to_image.weight, state["ema.generator.to_image.weight"])

    # An existing file is kept unless overwrite=true.
    before = _digest(out)
    cfg = compose_config("export", [f"ckpt_path={last}", f"out={out}"], tmp_path / "again")
    with pytest.raises(FileExistsError, match="overwrite=true"):
        export(cfg)
    assert _digest(out) == before
    with open_dict(cfg):
        cfg.overwrite = True
    assert export(cfg) == out
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(out.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="truncated or not a safetensors file"):
        load_checkpoint(truncated)


def test_export_copes_with_tensors_that_share_memory(tmp_path):
    weight = torch.randn(4, 3)
    state = {"live.weight": weight, "ema.weight": weight, "transposed": weight.t()}
    with pytest.raises(RuntimeError):  # what safetensors does with shared memory by itself
        safetensors.torch.save_file(state, str(tmp_path / "plain.safetensors"))
    path = save_safetensors(
        {"state_dict": state, CONFIG_KEY: "seed: 1\n"}, tmp_path / "m.safetensors"
    )
    loaded = load_checkpoint(path)
    assert loaded[CONFIG_KEY] == "seed: 1\n"
    assert {name: t.tolist() for name, t in loaded["state_dict"].items()} == {
        name: t.tolist() for name, t in state.items()
    }


# ------------------------------------------------------------------ 3. unusable checkpoints
def _truncated(last: Path, path: Path) -> None:
    path.write_bytes(last.read_bytes()[:1000])


def _foreign(last: Path, path: Path) -> None:
    torch.save({"weights": torch.zeros(3)}, path)


def _exported(last: Path, path: Path) -> None:
    save_safetensors(load_checkpoint(last), path)


# How each bad file is made, its name, and what the error says.
BAD_RESUMES = {
    "truncated": (_truncated, "bad.ckpt", "truncated or not a PyTorch file"),
    "foreign": (_foreign, "bad.ckpt", r"not a Lightning checkpoint \(no 'state_dict'; it holds"),
    "weights_only_export": (_exported, "bad.safetensors", "holds weights only"),
    "missing": (None, "none.ckpt", "checkpoint not found"),
}


@pytest.mark.parametrize("bad", sorted(BAD_RESUMES))
def test_resume_from_an_unusable_file_fails_before_training(bad, tiny_run, tmp_path):
    last = tiny_run
    make, name, message = BAD_RESUMES[bad]
    path = tmp_path / name
    if make is not None:
        make(last, path)
    before = _digest(path) if path.exists() else None
    out = tmp_path / "resumed"
    with pytest.raises((CheckpointError, FileNotFoundError), match=message):
        train(compose_config("train", [*TINY_RUN, f"ckpt_path={path}"], out))
    assert (_digest(path) if path.exists() else None) == before
    assert not (out / "checkpoints").exists()


def test_resume_with_another_model_size_names_the_mismatch(tiny_run, tmp_path):
    last = tiny_run
    before = _digest(last)
    wider = ["model.generator.base_width=16", f"ckpt_path={last}"]
    with pytest.raises(CheckpointError) as error:
        train(compose_config("train", [*TINY_RUN, *wider], tmp_path / "wider"))
    message = str(error.value)
    assert "does not fit the configured InvGANModule" in message
    assert (
        "tensors of another shape (32): generator.project.0.weight 512x16 (model: 1024x16)"
        in message
    )
    assert re.search(r"and \d+ more", message) and len(message) < 1500  # not one line a tensor
    assert _digest(last) == before
    assert not (tmp_path / "wider" / "checkpoints").exists()


def test_generator_weights_of_another_architecture_name_the_mismatch(tiny_run, tmp_path):
    checkpoint = load_checkpoint(tiny_run)
    state = checkpoint["state_dict"]
    state["ema.generator.to_image.weight"] = torch.zeros(1, 4, 3, 3)
    del state["ema.generator.to_image.bias"]
    forged = tmp_path / "forged.ckpt"
    torch.save(checkpoint, forged)
    with pytest.raises(CheckpointError) as error:
        load_frozen_generator(forged)
    assert str(error.value).startswith(
        f"{forged} (ema.generator) does not fit the configured DCGANGenerator: tensors of another "
        "shape (1): to_image.weight 1x4x3x3 (model: 1x8x3x3); missing from the file (1): "
        "to_image.bias"
    )


# ------------------------------------------------------------------ 4. config values
BAD_VALUES = {
    "negative_loss_weight": (
        ["model.loss.mmd_weight=-1", "model.loss.r1_gamma=-0.5"],
        ["model.loss.mmd_weight=-1: must be >= 0", "model.loss.r1_gamma=-0.5: must be >= 0"],
    ),
    "zero_learning_rate": (
        ["model.optimizer_g.lr=0"],
        ["model.optimizer_g.lr=0: must be > 0"],
    ),
    "stylegan2_resolution": (
        ["model=invgan_stylegan2", "data.resolution=24"],
        ["data.resolution=24: model.generator (StyleGAN2Generator)", "power of two >= 4"],
    ),
    "dcgan_resolution": (
        ["data.resolution=30"],
        ["data.resolution=30: model.discriminator (DCGANDiscriminator)", "2**num_scales = 4"],
    ),
    "psp_negative_weight": (
        ["model=psp", "model.lpips_weight=-0.8"],
        ["model.lpips_weight=-0.8: must be >= 0"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_unusable_config_value_fails_before_training_naming_the_key(case, tmp_path):
    overrides, messages = BAD_VALUES[case]
    cfg = compose_config("train", [*CPU_RUN, "data=synthetic", *overrides], tmp_path)
    with pytest.raises(ConfigValueError) as error:
        train(cfg)
    for message in messages:
        assert message in str(error.value)
    assert not list(tmp_path.iterdir()), "something was written before the check"


# ------------------------------------------------------------------ 5. evaluation fails midway
def test_evaluation_failing_midway_leaves_no_metrics_json(tiny_run, tmp_path, monkeypatch):
    last = tiny_run
    reached: list[str] = []
    mae, runtime = METRICS["mae"], METRICS["inversion_seconds_per_image"]
    original = mae.result

    def reconstruction_errors(self: Any) -> dict[str, Any]:
        reached.append("reconstruction")
        return original(self)

    def broken_runtime(self: Any) -> dict[str, Any]:
        raise RuntimeError("simulated fault in the runtime metric")

    monkeypatch.setattr(mae, "result", reconstruction_errors)
    monkeypatch.setattr(runtime, "result", broken_runtime)
    fresh, earlier = tmp_path / "fresh", tmp_path / "earlier"
    earlier.mkdir()
    (earlier / METRICS_FILE).write_text(json.dumps({"metrics": {"test/mae": {"value": 0.5}}}))
    before = _digest(earlier / METRICS_FILE)
    for out in (fresh, earlier):
        with pytest.raises(RuntimeError, match="simulated fault"):
            _evaluate(last, out, runtime=True)
    assert reached == ["reconstruction", "reconstruction"]  # it failed after real work
    assert not (fresh / METRICS_FILE).exists()
    assert _digest(earlier / METRICS_FILE) == before
    assert not list(fresh.glob("**/*")), "files written by a failed evaluation"
    assert [p.name for p in earlier.iterdir()] == [METRICS_FILE]


# ------------------------------------------------------------------ 6. paths
def test_export_writes_only_where_asked_and_never_through_a_shell(tiny_run, tmp_path):
    last = tiny_run
    checkpoints = sorted(last.parent.iterdir())
    run_dir = tmp_path / "run"
    default = export(compose_config("export", [f"ckpt_path={last}"], run_dir))
    assert default == run_dir / "model.safetensors" and default.is_file()
    # A name a shell would act on is only a file name.
    odd = tmp_path / "$(touch pwned); `touch pwned` | echo x.safetensors"
    written = export(compose_config("export", [f"ckpt_path={last}", f"out='{odd}'"], run_dir))
    assert written == odd and odd.is_file()
    assert sorted(last.parent.iterdir()) == checkpoints
    assert not [p for p in (tmp_path, Path.cwd(), REPO_ROOT) if (p / "pwned").exists()]
    before = _digest(last)
    with pytest.raises(ValueError, match="must end in .safetensors"):
        export(
            compose_config(
                "export", [f"ckpt_path={last}", f"out={last}", "overwrite=true"], run_dir
            )
        )
    assert _digest(last) == before
