"""Configs read from files (a checkpoint's run config, an exported file's metadata, a frozen
generator's architecture) are data: they may only name the project's own classes.

`hydra.utils.instantiate` calls whatever a `_target_` names, so a config planted in a file
from the internet could otherwise run any function on load. Before anything is imported or
built, `checked_config` resolves a stored config to plain data and checks every `_target_` at
any depth against an allowlist: the name must lie in the project's packages (or
`torch.optim` for optimizers and schedulers), and the object it names must be a network,
datamodule, optimizer, scheduler, config dataclass or one of the few builder functions the
configs use. Checking the resolved values (not the YAML text) matters: an interpolation or a
resolver such as `oc.create` can produce a `_target_` that the text does not show.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from invgan.checkpoints.safe_load import CheckpointError

# Hydra's key for the callable a config node is built with.
TARGET_KEY = "_target_"
# Package prefix -> the kinds of class a stored config may build from it.
ALLOWED_CLASSES: dict[str, tuple[type, ...]] = {
    "invgan.": (nn.Module, pl.LightningDataModule),
    "datamodules.": (pl.LightningDataModule, nn.Module),
    "torch.optim.": (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler),
}
# Config dataclasses (e.g. InvGANLossConfig) only hold values; allowed from these packages.
DATACLASS_PACKAGES = ("invgan.", "datamodules.")
# The functions that conf/ uses as `_target_` inside `model` (and that evaluation injects).
ALLOWED_FUNCTIONS = frozenset(
    {
        "invgan.nn.encoders.psp.psp_encoder",
        "invgan.checkpoints.psp_checkpoint.build_psp_encoder",
        "invgan.checkpoints.generator_import.load_frozen_generator",
        "invgan.checkpoints.generator_import.build_frozen_generator",
    }
)
# Modules that moved: checkpoints of earlier releases name them by their old place.
LEGACY_MODULES = {"invgan.utils.generator_import.": "invgan.checkpoints.generator_import."}


def _refuse(source: str, key: str, value: Any, why: str) -> CheckpointError:
    return CheckpointError(
        f"refusing the config stored in {source}: {key} = {value!r} {why}. A stored config "
        "may only build invgan's own networks, datamodules and torch.optim optimizers, since "
        "loading a file must never run other code; use a checkpoint written by invgan's "
        "train.py (or exported from one) that you trust."
    )


def _allowed_kind(obj: Any, name: str) -> bool:
    """Whether `obj`, located under `name`, is a class or builder function a config may call."""
    module = getattr(obj, "__module__", None) or ""
    if isinstance(obj, type):
        for prefix, bases in ALLOWED_CLASSES.items():
            # Both the name and the defining module must lie in the package: a name such as
            # `invgan.x.subprocess.Popen` reaches a foreign class through a module attribute.
            if name.startswith(prefix) and module.startswith(prefix):
                if issubclass(obj, bases):
                    return True
                if dataclasses.is_dataclass(obj) and prefix in DATACLASS_PACKAGES:
                    return True
        return False
    qualified = f"{module}.{getattr(obj, '__qualname__', '')}"
    return callable(obj) and qualified in ALLOWED_FUNCTIONS


def check_target(value: Any, source: str, key: str) -> str:
    """The allowed (and, for moved modules, current) dotted name of a stored `_target_`;
    `CheckpointError` naming `source`, `key` and the value for anything else."""
    if not isinstance(value, str):
        raise _refuse(source, key, value, "is not a dotted class name")
    for old, new in LEGACY_MODULES.items():
        if value.startswith(old):
            value = new + value[len(old) :]
    if not value.startswith(tuple(ALLOWED_CLASSES)):
        raise _refuse(source, key, value, "names code outside invgan, datamodules and torch.optim")
    try:
        obj = hydra.utils.get_object(value)
    except Exception as error:  # importing a module may fail in any way: all are refusals
        raise _refuse(source, key, value, f"names nothing importable ({error})") from error
    if not _allowed_kind(obj, value):
        raise _refuse(
            source,
            key,
            value,
            "is not a network, datamodule, optimizer, scheduler or config class of the project",
        )
    return value


def _checked(node: Any, source: str, key: str) -> Any:
    """A copy of resolved plain data with every `_target_` checked (and legacy names mapped)."""
    if isinstance(node, Mapping):
        checked = {}
        for name, value in node.items():
            path = f"{key}.{name}" if key else str(name)
            if name == TARGET_KEY:
                checked[name] = check_target(value, source, path)
            else:
                checked[name] = _checked(value, source, path)
        return checked
    if isinstance(node, list | tuple):
        return [_checked(value, source, f"{key}[{index}]") for index, value in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        # Resolved values are built again by Hydra, which would resolve this a second time.
        raise _refuse(source, key, node, "still holds an interpolation after resolving")
    return node


def checked_config(config: Any, source: str, key: str) -> Any:
    """`config` (a stored config node, dict or list) resolved to plain data, with every
    `_target_` at any depth allowed; `key` is its place in the file, used in errors."""
    try:
        if OmegaConf.is_config(config):
            resolved = OmegaConf.to_container(config, resolve=True)
        elif isinstance(config, Mapping | list | tuple):
            plain = dict(config) if isinstance(config, Mapping) else list(config)
            wrapped = OmegaConf.create(plain)
            resolved = OmegaConf.to_container(wrapped, resolve=True)
        else:
            resolved = config
    except OmegaConfBaseException as error:
        raise CheckpointError(
            f"cannot resolve {key} of the config stored in {source}: {error}. Pass the values "
            "it refers to (e.g. data_root=<images>) or use a checkpoint of a complete run."
        ) from error
    return _checked(resolved, source, key)
