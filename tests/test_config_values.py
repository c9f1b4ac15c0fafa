"""Config values: every unusable value is refused before anything is built, with a message that
names its full key, the value and the values allowed (`invgan.utils.config_checks`), in
training and evaluation configs, and a fuzz of every numeric key of every experiment."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import hydra
import pytest
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from invgan.modules.invgan_loss_config import InvGANLossConfig
from invgan.nn.config_check import check_config
from invgan.nn.stylegan2.generator import StyleGAN2Generator
from invgan.training.pipeline import train
from invgan.utils.config_checks import ConfigValueError
from tests.conftest import CONFIG_DIR, CPU_RUN, TINY_MODELS, compose_config, tiny_key

EXPERIMENTS = sorted(path.stem for path in (CONFIG_DIR / "experiment").glob("*.yaml"))
ENCODER_RECIPES = ("PSPModule", "InDomainEncoderModule", "ReStyleModule", "E4EModule")


# ------------------------------------------------------------------ the bad values
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.loss.mmd_weight=abc", "model.loss.mmd_weight='abc': must be a finite number >= 0"),
        ("model.optimizer_g.lr=fast", "model.optimizer_g.lr='fast': must be a finite number > 0"),
        ("model.loss.mmd_weight=nan", "model.loss.mmd_weight=nan: must be a finite number >= 0"),
        ("model.loss.r1_gamma=inf", "model.loss.r1_gamma=inf: must be a finite number >= 0"),
        ("model.mapping.z_dim=1.5", "model.mapping.z_dim=1.5: must be an integer >= 1"),
        ("model.mapping.z_dim=true", "model.mapping.z_dim=true: must be an integer >= 1"),
        ("model.loss.mmd_bandwidths=[]", "model.loss.mmd_bandwidths=[]: must be a non-empty"),
        ("data.batch_size=0", "data.batch_size=0: must be >= 1"),
        ("trainer.max_epochs=ten", "trainer.max_epochs='ten': must be an integer or null"),
    ],
)
def test_train_refuses_a_bad_value_naming_its_key_before_anything_is_built(
    override, message, tmp_path
):
    cfg = compose_config("train", [*CPU_RUN, "data=synthetic", override], tmp_path)
    with pytest.raises(ConfigValueError) as error:
        train(cfg)
    assert message in str(error.value)
    assert not list(tmp_path.iterdir()), "something was written before the check"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("metrics.fid.real_count=-5", "metrics.fid.real_count=-5: must be >= 1"),
        ("batch_size=0", "batch_size=0: must be >= 1"),
        ("metrics.kid.subsets=many", "metrics.kid.subsets='many': must be an integer >= 1"),
        ("metrics.fid.num_samples=[500,1]", "metrics.fid.num_samples=[500, 1]: must be"),
        ("metrics.grid.difference_gain=0", "metrics.grid.difference_gain=0: must be > 0"),
        ("inversion=optimization", None),
        ("inversion=optimization inversion.lr=-1", "inversion.lr=-1: must be > 0"),
        # null compares LPIPS at the images' own size (the inversion benchmark's setting).
        ("inversion=optimization inversion.lpips.resize=null", None),
        ("inversion=optimization inversion.lpips.resize=0", "inversion.lpips.resize=0: must be"),
    ],
)
def test_evaluate_config_is_checked_too(override, message, tmp_path):
    cfg = compose_config("evaluate", ["ckpt_path=unused.ckpt", *override.split()], tmp_path)
    if message is None:
        check_config(cfg)
        return
    with pytest.raises(ConfigValueError) as error:
        check_config(cfg)
    assert message in str(error.value)


def test_evaluation_batch_size_null_means_the_data_default_and_nothing_else():
    from invgan.evaluation.pipeline import evaluation_batch_size

    datamodule = type("Data", (), {"eval_batch_size": 256})()
    sizes = {}
    for size in (None, 8, 0):
        cfg = OmegaConf.create({"batch_size": size, "inversion": {"_target_": "builtins.dict"}})
        sizes[size] = evaluation_batch_size(cfg, datamodule)
    # 0 was once read as "not set" and became 256; the config check refuses it at the door.
    assert sizes == {None: 256, 8: 8, 0: 0}


def test_an_unknown_fid_is_refused_before_any_metric_runs():
    from invgan.evaluation.metrics import select_metrics

    # The inversion would fail to build (int(model=None)): the check comes first.
    cfg = OmegaConf.create(
        {"metrics": {"fid": {"which": ["rand_fid", "nope"]}}, "inversion": {"_target_": "int"}}
    )
    with pytest.raises(ConfigValueError, match=r"metrics.fid.which: unknown \['nope'\]"):
        select_metrics(cfg.metrics)


def test_loss_config_built_in_code_uses_the_same_rules():
    with pytest.raises(ConfigValueError, match=r"model.loss.mmd_weight=nan: must be a finite"):
        InvGANLossConfig(mmd_weight=math.nan)
    with pytest.raises(ConfigValueError, match=r"model.loss.cycle_weight='1': must be a finite"):
        InvGANLossConfig(cycle_weight="1")
    assert InvGANLossConfig(mmd_bandwidths=[1, 2]).mmd_bandwidths == (1.0, 2.0)


# ------------------------------------------------------------------ fuzz
SUBSTITUTES: list[Any] = ["abc", math.nan, math.inf, -math.inf, -1, 0, 0.5, 3, True, None, [2]]
# The model and the data keys it reads (resolution, channels); trainer and callbacks values are
# type-checked the same way but only built by a training run.
FUZZED_TREES = ("model", "data")


def numeric_keys(cfg: DictConfig) -> list[str]:
    """Dotted keys of every number (or list of numbers) under the fuzzed trees."""
    keys: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list) and node and all(_is_number(v) for v in node):
            keys.append(path)
        elif _is_number(node):
            keys.append(path)

    for tree in FUZZED_TREES:
        walk(OmegaConf.to_container(cfg[tree], resolve=False), tree)
    return keys


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@pytest.fixture(scope="module")
def tiny_generator_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 16-px rosinality-format StyleGAN2 file for the encoder recipes to load frozen."""
    torch.manual_seed(0)
    generator = StyleGAN2Generator(
        w_dim=16, resolution=16, channels=3, n_mlp=2, channel_base=256, channel_max=16,
        channel_multiplier=1,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("generator") / "g.pt"
    torch.save({"g_ema": generator.state_dict(), "latent_avg": torch.zeros(16)}, path)
    return path


def experiment_config(name: str, generator: Path, tmp_path: Path) -> DictConfig:
    """The experiment at test size: tiny networks, 16-px encoders against the tiny file."""
    overrides = [*CPU_RUN, f"experiment={name}"]
    cfg = compose_config("train", overrides, tmp_path)
    if tiny_key(cfg) in ENCODER_RECIPES:
        overrides += [f"model.generator.path={generator}", "data.resolution=16"]
    return compose_config("train", [*overrides, *TINY_MODELS[tiny_key(cfg)]], tmp_path)


def build(cfg: DictConfig) -> None:
    """The recipe's networks and losses, as training builds them."""
    hydra.utils.instantiate(cfg.model)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_fuzzed_numeric_values_are_accepted_or_refused_naming_the_key(
    experiment, tiny_generator_file, tmp_path
):
    base = experiment_config(experiment, tiny_generator_file, tmp_path)
    build(base)  # the unmodified experiment builds
    rng = random.Random(f"config-fuzz-{experiment}")
    outcomes = {"refused": 0, "accepted": 0, "refused while building": 0}
    for key in numeric_keys(base):
        value = rng.choice(SUBSTITUTES)
        cfg = base.copy()
        with open_dict(cfg):
            OmegaConf.update(cfg, key, value, merge=False)
        case = f"{key}={value!r}"
        try:
            check_config(cfg)
        except ConfigValueError as error:
            assert key in str(error), f"{case}: refused without naming the key: {error}"
            outcomes["refused"] += 1
            continue
        try:
            build(cfg)
        except Exception as error:  # accepted values must build, or be refused by name
            assert key in str(error), f"{case}: accepted, then failed while building: {error!r}"
            outcomes["refused while building"] += 1
            continue
        outcomes["accepted"] += 1
    assert outcomes["refused"] and outcomes["accepted"], outcomes
