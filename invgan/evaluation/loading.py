"""What `evaluate.py` evaluates: a training run's checkpoint or a pretrained generator file."""

from __future__ import annotations

from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from invgan.checkpoints.format import load_checkpoint, load_state_dict_checked
from invgan.checkpoints.generator_import import load_frozen_generator
from invgan.checkpoints.run_config import frozen_generator_architecture, restore_run_config
from invgan.checkpoints.stored_config import checked_config
from invgan.evaluation.pretrained_encoder import load_pretrained_encoder_model
from invgan.nn.pretrained_generator import PretrainedGenerator
from invgan.utils.config_checks import ConfigValueError


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when available, else CPU; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_model(
    run_cfg: DictConfig, checkpoint: dict[str, Any], cfg: DictConfig, source: str = "checkpoint"
) -> Any:
    """Instantiate the run's model (its config checked first), load its weights (a mismatch
    names the tensors), apply network-set overrides."""
    model_cfg = checked_config(run_cfg.model, source, "model")
    architecture = frozen_generator_architecture(checkpoint, source)
    if architecture is not None:
        # Encoder runs: rebuild the frozen generator from the checkpoint itself, not from the
        # weights file it was first loaded from (which may not exist here).
        model_cfg["generator"] = {
            "_target_": "invgan.checkpoints.generator_import.build_frozen_generator",
            "_recursive_": False,
            "architecture": architecture,
        }
    model = hydra.utils.instantiate(model_cfg)
    load_state_dict_checked(model, checkpoint["state_dict"], source)
    if cfg.get("inversion_networks"):
        model.inversion_networks = cfg.inversion_networks
    if cfg.get("sampling_networks"):
        model.sampling_networks = cfg.sampling_networks
    return model.eval()


def load_model_and_data(cfg: DictConfig, device: torch.device) -> tuple[Any, DictConfig, str]:
    """The model, its data config and the file it came from: a run's checkpoint
    (`ckpt_path`), or with `data=<dataset>` a pretrained generator file (`generator_path`) or
    a pSp / e4e checkpoint (`encoder_path`)."""
    given = [key for key in ("ckpt_path", "generator_path", "encoder_path") if cfg.get(key)]
    if len(given) != 1:
        raise ConfigValueError(
            "pass exactly one of ckpt_path=<run>/checkpoints/last.ckpt, "
            "generator_path=<generator weights> and encoder_path=<pSp / e4e checkpoint> (the "
            "latter two with data=<dataset>)"
        )
    if cfg.get("ckpt_path"):
        checkpoint = load_checkpoint(cfg.ckpt_path)
        run_cfg = restore_run_config(checkpoint, cfg, str(cfg.ckpt_path))
        model = build_model(run_cfg, checkpoint, cfg, str(cfg.ckpt_path)).to(device)
        return model, run_cfg.data, str(cfg.ckpt_path)
    if cfg.get("data") is None:
        raise ConfigValueError(
            f"{given[0]} needs the images to invert: add data=<dataset> "
            "(e.g. data=celeba data.root=/path/to/faces)"
        )
    if cfg.get("encoder_path"):
        model = load_pretrained_encoder_model(
            cfg.encoder_path, resolution=cfg.data.resolution, channels=cfg.data.channels
        )
        return model.to(device), cfg.data, str(cfg.encoder_path)
    frozen = load_frozen_generator(
        cfg.generator_path, resolution=cfg.data.resolution, channels=cfg.data.channels
    )
    return PretrainedGenerator(frozen).to(device), cfg.data, str(cfg.generator_path)


def load_inference_model(cfg: DictConfig, device: torch.device) -> tuple[Any, int, int]:
    """The model with its resolution and image channels, for commands that need no dataset: a
    training run's (`ckpt_path`) or a pSp / e4e checkpoint's (`encoder_path`)."""
    if bool(cfg.get("ckpt_path")) == bool(cfg.get("encoder_path")):
        raise ConfigValueError(
            "pass exactly one of ckpt_path=<run>/checkpoints/last.ckpt and "
            "encoder_path=<pSp / e4e checkpoint>"
        )
    if cfg.get("encoder_path"):
        model = load_pretrained_encoder_model(cfg.encoder_path).to(device)
        return model, model.generator.resolution, model.generator.channels
    checkpoint = load_checkpoint(cfg.ckpt_path)
    run_cfg = restore_run_config(checkpoint, cfg, str(cfg.ckpt_path))
    model = build_model(run_cfg, checkpoint, cfg, str(cfg.ckpt_path)).to(device)
    return model, int(run_cfg.data.resolution), int(run_cfg.data.channels)
