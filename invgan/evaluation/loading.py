"""What `evaluate.py` evaluates: a training run's checkpoint or a pretrained generator file."""

from __future__ import annotations

from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from invgan.checkpoints.format import load_checkpoint, load_state_dict_checked
from invgan.checkpoints.generator_import import load_frozen_generator
from invgan.checkpoints.keys import CONFIG_KEY, GENERATOR_ARCHITECTURE_KEY
from invgan.inversion.pretrained_generator import PretrainedGenerator


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when available, else CPU; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def restore_run_config(checkpoint: dict[str, Any], cfg: DictConfig) -> DictConfig:
    """The training run's config with this run's `paths` (so data paths re-resolve here)."""
    run_cfg = OmegaConf.create(checkpoint[CONFIG_KEY])
    run_cfg.paths = cfg.paths
    run_cfg.seed = cfg.seed
    if cfg.get("data_root"):
        run_cfg.data.root = cfg.data_root
    return run_cfg


def build_model(
    run_cfg: DictConfig, checkpoint: dict[str, Any], cfg: DictConfig, source: str = "checkpoint"
) -> Any:
    """Instantiate the run's model, load its weights (a mismatch names the tensors), apply
    network-set overrides."""
    architecture = checkpoint.get(GENERATOR_ARCHITECTURE_KEY)
    if architecture is not None:
        # Encoder runs: rebuild the frozen generator from the checkpoint itself, not from the
        # weights file it was first loaded from (which may not exist here).
        run_cfg.model.generator = {
            "_target_": "invgan.checkpoints.generator_import.build_frozen_generator",
            "_recursive_": False,
            "architecture": architecture,
        }
    model = hydra.utils.instantiate(run_cfg.model)
    load_state_dict_checked(model, checkpoint["state_dict"], source)
    if cfg.get("inversion_networks"):
        model.inversion_networks = cfg.inversion_networks
    if cfg.get("sampling_networks"):
        model.sampling_networks = cfg.sampling_networks
    return model.eval()


def load_model_and_data(cfg: DictConfig, device: torch.device) -> tuple[Any, DictConfig, str]:
    """The model, its data config and the file it came from: a run's checkpoint
    (`ckpt_path`), or a pretrained generator file (`generator_path`) with `data=<dataset>`."""
    if bool(cfg.get("ckpt_path")) == bool(cfg.get("generator_path")):
        raise ValueError(
            "pass exactly one of ckpt_path=<run>/checkpoints/last.ckpt and "
            "generator_path=<generator weights> (the latter with data=<dataset>)"
        )
    if cfg.get("ckpt_path"):
        checkpoint = load_checkpoint(cfg.ckpt_path)
        run_cfg = restore_run_config(checkpoint, cfg)
        model = build_model(run_cfg, checkpoint, cfg, str(cfg.ckpt_path)).to(device)
        return model, run_cfg.data, str(cfg.ckpt_path)
    if cfg.get("data") is None:
        raise ValueError(
            "generator_path needs the images to invert: add data=<dataset> "
            "(e.g. data=celeba data.root=/path/to/faces)"
        )
    frozen = load_frozen_generator(
        cfg.generator_path, resolution=cfg.data.resolution, channels=cfg.data.channels
    )
    return PretrainedGenerator(frozen).to(device), cfg.data, str(cfg.generator_path)
