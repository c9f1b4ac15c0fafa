"""Checkpoints that pass the safe loader but carry a hostile config or a hostile stored path:
a `_target_` planted in the stored config is refused, naming the key, by every command that
rebuilds a model from a file, and the test phase after training loads only a best checkpoint of
its own run folder, safely; a stale best path (a deleted file) is never fatal."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from invgan.checkpoints.format import CheckpointError, load_checkpoint, save_safetensors
from invgan.checkpoints.generator_import import build_frozen_generator, load_frozen_generator
from invgan.checkpoints.keys import CONFIG_KEY, GENERATOR_ARCHITECTURE_KEY
from invgan.checkpoints.stored_config import check_target
from invgan.cli.apply import apply
from invgan.cli.export import export
from invgan.evaluation.pipeline import evaluate
from invgan.training.pipeline import train
from tests.conftest import CONFIG_DIR, CPU_RUN, REPO_ROOT, SHARED_DATA, TINY_MODELS, compose_config
from tests.test_safety import CreatesMarker

# A tiny DCGAN InvGAN on synthetic data: two iterations per epoch (seconds on a CPU).
TINY_RUN = [
    *CPU_RUN,
    *TINY_MODELS["DCGANGenerator"],
    "data=synthetic",
    "data.num_train=32",
    "data.num_val=16",
    "data.num_test=16",
    "callbacks.image_grids.every_n_iterations=1000",
]
QUICK_EVALUATION = ["metrics.fid.enabled=false", "metrics.lpips.nets=[alex]", "device=cpu"]


# ------------------------------------------------------------------ hostile stored configs
def _opens(marker: Path) -> dict[str, Any]:
    """A config node whose instantiation creates `marker`: code chosen by the file."""
    return {"_target_": "builtins.open", "_args_": [str(marker), "w"]}


def _plant_model(cfg: DictConfig, marker: Path) -> None:
    cfg.model = _opens(marker)


def _plant_network(cfg: DictConfig, marker: Path) -> None:
    # Starts with `invgan.` but reaches os.open through a module attribute (O_CREAT|O_WRONLY).
    cfg.model.generator = {
        "_target_": "invgan.checkpoints.format.os.open",
        "_args_": [str(marker), 65],
    }


def _plant_optimizer(cfg: DictConfig, marker: Path) -> None:
    cfg.model.optimizer_g = _opens(marker)


def _plant_resolver(cfg: DictConfig, marker: Path) -> None:
    # Not visible as a `_target_` in the text: the resolver creates the node when resolved.
    cfg.model.discriminator.base_width = (
        f"${{oc.create:{{_target_: builtins.open, _args_: ['{marker}', w]}}}}"
    )


def _plant_data(cfg: DictConfig, marker: Path) -> None:
    # Nested, so that the datamodule's own keys (which the model config refers to) stay.
    cfg.data.augment = _opens(marker)


# plant -> (how it is planted, the key the refusal must name, the config section it is in).
PLANTS: dict[str, tuple[Callable[[DictConfig, Path], None], str, str]] = {
    "model": (_plant_model, "model._target_", "model"),
    "nested_network": (_plant_network, "model.generator._target_", "model"),
    "optimizer": (_plant_optimizer, "model.optimizer_g._target_", "model"),
    "resolver": (_plant_resolver, "model.discriminator.base_width._target_", "model"),
    "data": (_plant_data, "data.augment._target_", "data"),
}
MODEL_PLANTS = sorted(name for name, (_, _, section) in PLANTS.items() if section == "model")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """last.ckpt of a 2-iteration run of the tiny DCGAN InvGAN."""
    run_dir = tmp_path_factory.mktemp("tiny_run")
    train(compose_config("train", [*TINY_RUN, "trainer.max_steps=4", "test=false"], run_dir))
    return run_dir / "checkpoints" / "last.ckpt"


def _hostile(tiny_run: Path, plant: str, folder: Path) -> tuple[Path, Path]:
    """A copy of `tiny_run` with `plant` in its stored config, and the payload's marker."""
    marker = folder / "code_ran"
    checkpoint = torch.load(tiny_run, weights_only=True)
    run_cfg = OmegaConf.create(checkpoint[CONFIG_KEY])
    PLANTS[plant][0](run_cfg, marker)
    checkpoint[CONFIG_KEY] = OmegaConf.to_yaml(run_cfg)
    path = folder / "hostile.ckpt"
    torch.save(checkpoint, path)
    return path, marker


def _refused(error: pytest.ExceptionInfo, path: Path, key: str) -> None:
    message = str(error.value)
    assert "refusing the config stored in" in message and str(path) in message, message
    assert key in message, message


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_planted_payloads_are_live(plant, tiny_run, tmp_path):
    # What each payload does when its section is built without the allowlist.
    path, marker = _hostile(tiny_run, plant, tmp_path)
    run_cfg = OmegaConf.create(torch.load(path, weights_only=True)[CONFIG_KEY])
    run_cfg.paths.output_dir = str(tmp_path)
    try:
        hydra.utils.instantiate(run_cfg[PLANTS[plant][2]])
    except Exception:  # the payload ran before the rest of the config failed to build
        pass
    assert marker.exists()


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_evaluate_ckpt_path_refuses_a_planted_target(plant, tiny_run, tmp_path):
    path, marker = _hostile(tiny_run, plant, tmp_path)
    cfg = compose_config("evaluate", [f"ckpt_path={path}", *QUICK_EVALUATION], tmp_path / "out")
    with pytest.raises(CheckpointError) as error:
        evaluate(cfg)
    _refused(error, path, PLANTS[plant][1])
    assert not marker.exists()


@pytest.mark.parametrize("plant", MODEL_PLANTS)
def test_evaluate_generator_path_refuses_a_planted_target(plant, tiny_run, tmp_path):
    path, marker = _hostile(tiny_run, plant, tmp_path)
    overrides = [f"generator_path={path}", "data=synthetic", "inversion=optimization"]
    cfg = compose_config("evaluate", [*overrides, *QUICK_EVALUATION], tmp_path / "out")
    with pytest.raises(CheckpointError) as error:
        evaluate(cfg)
    _refused(error, path, PLANTS[plant][1])
    assert not marker.exists()


def test_generator_file_never_builds_its_stored_data_config(tiny_run, tmp_path):
    # A generator file's data config is never built: the payload stays inert.
    path, marker = _hostile(tiny_run, "data", tmp_path)
    frozen = load_frozen_generator(path, latent_avg_samples=8)
    assert frozen.resolution == 16
    assert not marker.exists()


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_apply_refuses_a_planted_target(plant, tiny_run, tmp_path):
    path, marker = _hostile(tiny_run, plant, tmp_path)
    overrides = [f"ckpt_path={path}", f"inputs={tmp_path}", "device=cpu"]
    with pytest.raises(CheckpointError) as error:
        apply(compose_config("apply", overrides, tmp_path / "out"))
    _refused(error, path, PLANTS[plant][1])
    assert not marker.exists()


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_export_refuses_to_copy_a_planted_target(plant, tiny_run, tmp_path):
    path, marker = _hostile(tiny_run, plant, tmp_path)
    out = tmp_path / "model.safetensors"
    with pytest.raises(CheckpointError) as error:
        export(compose_config("export", [f"ckpt_path={path}", f"out={out}"], tmp_path / "out"))
    _refused(error, path, PLANTS[plant][1])
    assert not out.exists() and not marker.exists()


def _hostile_safetensors(tiny_run: Path, folder: Path, architecture: bool) -> tuple[Path, Path]:
    """An exported file written by hand: a planted generator, in the run config or in the
    stored frozen-generator architecture of an encoder run."""
    marker = folder / "code_ran"
    checkpoint = load_checkpoint(tiny_run)
    if architecture:
        checkpoint[GENERATOR_ARCHITECTURE_KEY] = {"generator": _opens(marker), "mapping": None}
    else:
        run_cfg = OmegaConf.create(checkpoint[CONFIG_KEY])
        _plant_network(run_cfg, marker)
        checkpoint[CONFIG_KEY] = OmegaConf.to_yaml(run_cfg)
    return save_safetensors(checkpoint, folder / "hostile.safetensors"), marker


@pytest.mark.parametrize("architecture", [False, True], ids=["run_config", "architecture"])
def test_hostile_safetensors_is_refused_by_evaluate_apply_and_generator_import(
    architecture, tiny_run, tmp_path
):
    path, marker = _hostile_safetensors(tiny_run, tmp_path, architecture)
    key = f"{GENERATOR_ARCHITECTURE_KEY if architecture else 'model'}.generator._target_"
    cfg = compose_config("evaluate", [f"ckpt_path={path}", *QUICK_EVALUATION], tmp_path / "e")
    with pytest.raises(CheckpointError) as error:
        evaluate(cfg)
    _refused(error, path, key)
    overrides = [f"ckpt_path={path}", f"inputs={tmp_path}", "device=cpu"]
    with pytest.raises(CheckpointError) as error:
        apply(compose_config("apply", overrides, tmp_path / "a"))
    _refused(error, path, key)
    if not architecture:
        with pytest.raises(CheckpointError) as error:
            load_frozen_generator(path)
        _refused(error, path, "model.generator._target_")
    assert not marker.exists()


@pytest.mark.parametrize("plant", ["nested_network", "resolver"])
def test_encoder_recipe_refuses_a_planted_generator_file(plant, tiny_run, tmp_path):
    path, marker = _hostile(tiny_run, plant, tmp_path)
    overrides = [
        *CPU_RUN,
        "experiment=celeba_psp",
        f"data.root={SHARED_DATA / 'faces'}",
        "data.resolution=16",
        *TINY_MODELS["PSPModule"],
        f"model.generator.path={path}",
    ]
    with pytest.raises(Exception, match="refusing the config stored in") as error:
        train(compose_config("train", overrides, tmp_path / "run"))
    # Hydra wraps the refusal of the nested `load_frozen_generator` call.
    assert PLANTS[plant][1] in str(error.value) and str(path) in str(error.value)
    assert not marker.exists()


def test_evaluate_py_command_refuses_a_planted_target(tiny_run, tmp_path):
    path, marker = _hostile(tiny_run, "optimizer", tmp_path)
    command = [sys.executable, "evaluate.py", f"ckpt_path={path}", *QUICK_EVALUATION]
    run = [*command, f"hydra.run.dir={tmp_path / 'out'}"]
    result = subprocess.run(run, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "model.optimizer_g._target_" in result.stderr and "builtins.open" in result.stderr
    assert not marker.exists()


# ------------------------------------------------------------------ the allowlist itself
def _targets(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["_target_"]] if "_target_" in node else []
        return found + [t for value in node.values() for t in _targets(value)]
    if isinstance(node, list):
        return [t for value in node for t in _targets(value)]
    return []


def test_every_target_the_model_and_data_configs_use_is_allowed():
    found = []
    for group in ("model", "data", "generator"):
        for file in (CONFIG_DIR / group).glob("*.yaml"):
            found += _targets(OmegaConf.to_container(OmegaConf.load(file)))
    for file in (CONFIG_DIR / "experiment").glob("*.yaml"):
        content = OmegaConf.to_container(OmegaConf.load(file))
        found += _targets({key: content.get(key) for key in ("model", "data")})
    assert len(set(found)) > 15
    for target in set(found):
        assert check_target(target, "conf/", "_target_") == target


@pytest.mark.parametrize(
    "target",
    [
        "builtins.exec",
        "os.system",
        "pathlib.Path.touch",
        "invgan.checkpoints.format.torch.load",  # a torch function through a module attribute
        "invgan.nn.dcgan.nn.Module",  # a foreign class through a module attribute
        "invgan.evaluation.pipeline.evaluate",  # a project function that is no builder
        "torch.optim.swa_utils.AveragedModel",  # an nn.Module, but not an optimizer
        "invgan_evil.Model",
        "invgan.no_such_module.Thing",
    ],
)
def test_allowlist_refuses_code_outside_the_project_builders(target):
    with pytest.raises(CheckpointError, match="refusing the config stored in f.ckpt"):
        check_target(target, "f.ckpt", "model._target_")


def test_moved_generator_import_targets_of_older_checkpoints_still_load():
    old = "invgan.utils.generator_import.build_frozen_generator"
    new = "invgan.checkpoints.generator_import.build_frozen_generator"
    assert check_target(old, "old.ckpt", "model.generator._target_") == new
    with pytest.raises(CheckpointError, match="frozen_generator_architecture.generator"):
        build_frozen_generator({"generator": {"_target_": "builtins.exec"}, "mapping": None})


# ------------------------------------------------------------------ stored best-model paths
def _checkpoint_callback_state(checkpoint: dict[str, Any]) -> dict[str, Any]:
    (state,) = [v for k, v in checkpoint["callbacks"].items() if k.startswith("ModelCheckpoint")]
    return state


def test_resumed_best_path_outside_the_run_is_never_loaded(train_config, tmp_path, monkeypatch):
    cfg = train_config(*TINY_RUN, "trainer.max_steps=4", "test=false", tiny=False)
    train(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    marker = tmp_path / "code_ran"
    evil = tmp_path / "elsewhere" / "best.ckpt"
    evil.parent.mkdir()
    torch.save({"state_dict": CreatesMarker(marker)}, evil)
    checkpoint = torch.load(last, weights_only=True)
    _checkpoint_callback_state(checkpoint)["best_model_path"] = str(evil)
    torch.save(checkpoint, last)

    # torch's override that makes loads without an explicit weights_only unpickle anything.
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    again = cfg.copy()
    again.test = True
    metrics = train(again)  # relaunched in its folder: resumes from the planted last.ckpt
    assert "test/mae" in metrics
    assert not marker.exists()
    torch.load(evil, weights_only=False)["state_dict"].close()  # the payload is live
    assert marker.exists()


# Every validation is a new best (the step only grows) and top-1 deletes the previous file.
NEW_BEST_EACH_EPOCH = [
    "callbacks.model_checkpoint.monitor=step",
    "callbacks.model_checkpoint.mode=max",
    "trainer.max_epochs=2",
    "test=false",
]


def test_last_checkpoint_records_the_current_best(train_config):
    cfg = train_config(*TINY_RUN, *NEW_BEST_EACH_EPOCH, tiny=False)
    train(cfg)
    folder = Path(cfg.paths.output_dir) / "checkpoints"
    assert not (folder / "epoch_000.ckpt").exists()
    state = _checkpoint_callback_state(torch.load(folder / "last.ckpt", weights_only=True))
    assert Path(state["best_model_path"]) == (folder / "epoch_001.ckpt").resolve()
    assert Path(state["best_model_path"]).is_file()


def test_relaunched_finished_run_tests_even_when_its_best_file_is_gone(train_config, caplog):
    # The default monitor (val/mae): a relaunched finished run logs no metric, so Lightning
    # saves no new best file and the test phase depends on the best path in last.ckpt.
    cfg = train_config(*TINY_RUN, "trainer.max_epochs=2", "test=false", tiny=False)
    train(cfg)
    again = cfg.copy()
    again.test = True
    assert "test/mae" in train(again)  # the finished run, relaunched: tests its best file
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    best = Path(_checkpoint_callback_state(torch.load(last, weights_only=True))["best_model_path"])
    best.unlink()
    assert "test/mae" in train(again)  # the stored best is gone: the final weights are tested
    assert f"{best.name}, a path restored from a checkpoint: it no longer exists" in caplog.text
