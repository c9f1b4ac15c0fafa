"""Build callbacks and loggers from their config groups."""

from __future__ import annotations

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger


def _instantiate_group(group: DictConfig | None, kind: str) -> list:
    if not group:
        return []
    if not isinstance(group, DictConfig):
        raise TypeError(f"the {kind} config must be a mapping of name -> config")
    return [hydra.utils.instantiate(entry) for entry in group.values() if "_target_" in entry]


def instantiate_callbacks(group: DictConfig | None) -> list[pl.Callback]:
    """One callback per entry of the `callbacks` group that has a `_target_`."""
    return _instantiate_group(group, "callbacks")


def instantiate_loggers(group: DictConfig | None) -> list[Logger]:
    """One logger per entry of the `logger` group that has a `_target_`."""
    return _instantiate_group(group, "logger")


def instantiate_datamodule(data_cfg: DictConfig) -> pl.LightningDataModule:
    """The datamodule of the `data` group, with plain Python lists and dicts as arguments.

    Datamodules record their arguments in checkpoints; OmegaConf containers there would make
    the checkpoints unloadable with `torch.load(weights_only=True)`.
    """
    return hydra.utils.instantiate(data_cfg, _convert_="all")
