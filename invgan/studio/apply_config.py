"""conf/apply.yaml composed as the apply command composes it, for the studio to build the
same inversion methods and applications from the same overrides."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from invgan.cli.config_dir import CONFIG_DIR

_LOCK = threading.Lock()  # Hydra's global state is not thread-safe
_COMPOSED: dict[tuple[str, ...], DictConfig] = {}


def compose_apply(groups: Sequence[str]) -> DictConfig:
    """conf/apply.yaml with the overrides `groups` (a fresh copy; compositions are cached,
    since composing takes a good part of a second and a slider edit reuses the same one).

    Inside a Hydra app (the studio's entry point) Hydra's own config search path is used,
    elsewhere the repository's conf/.
    """
    key = tuple(groups)
    with _LOCK:
        if key not in _COMPOSED:
            if GlobalHydra.instance().is_initialized():
                _COMPOSED[key] = hydra.compose(config_name="apply", overrides=list(key))
            else:
                with hydra.initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
                    _COMPOSED[key] = hydra.compose(config_name="apply", overrides=list(key))
        return copy.deepcopy(_COMPOSED[key])


def with_values(cfg: DictConfig, values: Mapping[str, Any]) -> DictConfig:
    """`cfg` with `key: value` set (dotted keys, new keys allowed), as overrides set them."""
    for key, value in values.items():
        plain = str(value) if isinstance(value, Path) else value
        OmegaConf.update(cfg, key, plain, merge=False, force_add=True)
    return cfg
