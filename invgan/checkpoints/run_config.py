"""The config a training run stored in its checkpoint, restored on this machine for commands
that rebuild the run's model and data (evaluation, applications, export, experiments)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from invgan.checkpoints.keys import CONFIG_KEY, GENERATOR_ARCHITECTURE_KEY
from invgan.checkpoints.safe_load import CheckpointError
from invgan.checkpoints.stored_config import checked_config

# The parts of a stored run config that evaluation and applications build objects from.
REBUILT_SECTIONS = ("model", "data")


def restore_run_config(
    checkpoint: dict[str, Any], cfg: DictConfig, source: str = "checkpoint"
) -> DictConfig:
    """The training run's config with this run's `paths` (so data paths re-resolve here), its
    `model` and `data` resolved and checked: a file never chooses what gets built."""
    run_cfg = OmegaConf.create(checkpoint[CONFIG_KEY])
    if not isinstance(run_cfg, DictConfig):
        raise CheckpointError(f"the '{CONFIG_KEY}' stored in {source} is not a mapping")
    run_cfg.paths = cfg.paths
    if cfg.get("seed") is not None:
        run_cfg.seed = cfg.seed
    for section in REBUILT_SECTIONS:
        if not isinstance(run_cfg.get(section), DictConfig):
            raise CheckpointError(
                f"the config stored in {source} has no '{section}' mapping: it was not written "
                "by invgan's train.py"
            )
    if cfg.get("data_root"):
        run_cfg.data.root = cfg.data_root
    for section in REBUILT_SECTIONS:
        run_cfg[section] = checked_config(run_cfg[section], source, section)
    frozen_generator_architecture(checkpoint, source)
    return run_cfg


def frozen_generator_architecture(checkpoint: dict[str, Any], source: str) -> Any:
    """An encoder run's stored frozen-generator config, checked (None for other runs)."""
    architecture = checkpoint.get(GENERATOR_ARCHITECTURE_KEY)
    if architecture is None:
        return None
    return checked_config(architecture, source, GENERATOR_ARCHITECTURE_KEY)
