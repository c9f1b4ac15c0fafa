"""Fixtures: the real conf/ composed with tiny CPU overrides, and the shared data folders."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "conf"
SHARED_DIR = REPO_ROOT.parent / "shared"
SHARED_DATA = SHARED_DIR / "data"
INCEPTION_WEIGHTS = SHARED_DIR / "weights" / "weights-inception-2015-12-05-6726825d.pth"
LPIPS_WEIGHTS = {net: SHARED_DIR / "weights" / f"lpips_{net}_full.pth" for net in ("alex", "vgg")}

# Tiny networks so that a training step takes milliseconds on a 2-core CPU, per backbone
# (keyed by the generator's class name; BigGAN shares DCGAN's option names).
_TINY_DCGAN_OR_BIGGAN = [
    "model.mapping.z_dim=16",
    "model.mapping.w_dim=16",
    "model.mapping.hidden_dim=32",
    "model.generator.base_width=8",
    "model.discriminator.base_width=8",
    "model.discriminator.latent_hidden_dim=32",
]
TINY_MODELS = {
    "DCGANGenerator": _TINY_DCGAN_OR_BIGGAN,
    "BigGANGenerator": _TINY_DCGAN_OR_BIGGAN,
    "StyleGAN2Generator": [
        "model.generator.w_dim=16",
        "model.generator.n_mlp=2",
        "model.generator.channel_base=256",
        "model.generator.channel_max=16",
        "model.generator.channel_multiplier=1",
    ],
    # Encoder recipes train no generator (theirs is loaded and frozen): keyed by the module.
    "PSPModule": [
        "model.encoder.blocks=[1,1,1,1]",
        "model.encoder.base_width=8",
        "model.generator.latent_avg_samples=2000",
    ],
    "ReStyleModule": [
        "model.encoder.blocks=[1,1,1,1]",
        "model.encoder.base_width=8",
        "model.generator.latent_avg_samples=2000",
        "model.iterations=2",
    ],
    "E4EModule": [
        "model.encoder.blocks=[1,1,1,1]",
        "model.encoder.base_width=8",
        "model.generator.latent_avg_samples=2000",
        "model.discriminator.hidden_width=16",
        "model.progressive_start=2",  # offsets join within a short run
        "model.progressive_interval=2",
    ],
    "InDomainEncoderModule": [
        "model.encoder.base_width=8",
        "model.encoder.max_width=16",
        "model.discriminator.channel_multiplier=1",
        "model.discriminator.channel_base=256",
        "model.discriminator.channel_max=16",
        "model.perceptual.resize=null",
    ],
}
CPU_RUN = [
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "data.num_workers=0",
    "logger=csv",
]


def run_entry_point(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python <args>` in the repository root, as a user runs the entry points; output kept."""
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )


def compose_config(name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose conf/<name>.yaml as the CLI would, with outputs under `output_dir`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir / "logs")
        cfg.paths.cache_dir = str(output_dir / "cache")
        del cfg["hydra"]  # the CLI hands the task config without the hydra node
    GlobalHydra.instance().clear()
    return cfg


@pytest.fixture(autouse=True, scope="session")
def one_thread() -> Iterator[None]:
    """Run single-threaded: the tests' tiny networks gain nothing from a second intra-op
    thread, and on a busy 2-core machine each step would wait for it (tens of times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def offline_lpips_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point configs at the shared LPIPS weights (tests never download), unless the
    environment already names weights files."""
    for net, path in LPIPS_WEIGHTS.items():
        variable = f"INVGAN_LPIPS_{net.upper()}_WEIGHTS"
        if variable not in os.environ:
            monkeypatch.setenv(variable, str(path))


def tiny_key(cfg: DictConfig) -> str:
    """The TINY_MODELS entry of a composed config: its trained generator's class, or the
    module's class for recipes whose generator is loaded frozen."""
    generator = cfg.model.generator._target_.rsplit(".", 1)[-1]
    return generator if generator in TINY_MODELS else cfg.model._target_.rsplit(".", 1)[-1]


@pytest.fixture
def train_config(tmp_path: Path) -> Callable[..., DictConfig]:
    """Factory: compose train.yaml with tiny CPU overrides plus the caller's. Each config gets
    its own run folder (`run`, `run_2`, ...): a run never resumes another's last.ckpt."""
    made = []

    def make(*overrides: str, tiny: bool = True) -> DictConfig:
        made.append(1)
        folder = tmp_path / ("run" if len(made) == 1 else f"run_{len(made)}")
        cfg = compose_config("train", [*CPU_RUN, *overrides], folder)
        if not tiny:
            return cfg
        return compose_config("train", [*CPU_RUN, *TINY_MODELS[tiny_key(cfg)], *overrides], folder)

    return make


@pytest.fixture
def shared_data(monkeypatch: pytest.MonkeyPatch) -> Path:
    """../shared/data, also exported as INVGAN_DATA_DIR the way users point at local data."""
    assert SHARED_DATA.is_dir(), f"expected the shared data folder at {SHARED_DATA}"
    monkeypatch.setenv("INVGAN_DATA_DIR", str(SHARED_DATA))
    return SHARED_DATA


def bare_cpu_trainer(**limits: int) -> pl.Trainer:
    """A CPU Trainer with no logger, checkpoints, progress bar or summary; `limits` such as
    max_steps (two per InvGAN iteration) or max_epochs bound the run."""
    return pl.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        **limits,
    )


# A small StyleGAN2 trained briefly on real faces, shared by the encoder and inversion tests
# as the frozen generator they invert (16 px, w_dim 16).
FACE_GENERATOR_RUN = [
    "experiment=celeba_stylegan_invgan",
    "data.resolution=16",
    "data.batch_size=8",
    "data.eval_batch_size=16",
    "trainer.max_steps=160",
    "trainer.limit_val_batches=1",
    "test=false",
    "optimized_metric=null",
    "callbacks.image_grids.every_n_iterations=1000",
]


@pytest.fixture(scope="session")
def face_generator_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """last.ckpt of an 80-iteration InvGAN StyleGAN2 run on ../shared/data/faces (16 px)."""
    from invgan.training.pipeline import train

    run_dir = tmp_path_factory.mktemp("face_generator")
    overrides = [*CPU_RUN, *TINY_MODELS["StyleGAN2Generator"], *FACE_GENERATOR_RUN]
    cfg = compose_config("train", [*overrides, f"data.root={SHARED_DATA / 'faces'}"], run_dir)
    train(cfg)
    return run_dir / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def face_run(face_generator_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The face InvGAN as evaluate.py builds it, and its training run's config."""
    from invgan.checkpoints.format import load_checkpoint
    from invgan.checkpoints.run_config import restore_run_config
    from invgan.evaluation.loading import build_model

    cfg = compose_config(
        "evaluate",
        [f"ckpt_path={face_generator_checkpoint}", "device=cpu"],
        tmp_path_factory.mktemp("eval"),
    )
    checkpoint = load_checkpoint(face_generator_checkpoint)
    run_cfg = restore_run_config(checkpoint, cfg)
    return build_model(run_cfg, checkpoint, cfg), run_cfg
