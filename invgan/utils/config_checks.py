"""Config values that cannot train, refused before anything is built, with the key and the
values it allows.

Hydra already refuses unknown keys and wrong types of structured parts; these rules cover
values of the right type that are still unusable. They apply to every key of the model tree
that they match, so new recipes and networks are covered without being listed here.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from invgan.nn.biggan.resolution import num_resamplings
from invgan.nn.dcgan import _check_resolution as dcgan_base_size
from invgan.nn.stylegan2.widths import log2_resolution

# Loss weights, and R1's gamma (the penalty's weight): 0 turns a term off, below 0 inverts it.
NON_NEGATIVE_SUFFIXES = ("_weight", "_gamma")
# Optimizer learning rates and the StyleGAN2 mapping network's learning-rate multiplier.
POSITIVE_KEYS = ("lr", "lr_mlp")
# Networks whose layer schedule needs particular resolutions, by the module of their class:
# each rule raises ValueError naming the allowed values. A node's arguments have its class's
# defaults filled in.
RESOLUTION_RULES: dict[str, Callable[[int, dict[str, Any]], object]] = {
    "invgan.nn.stylegan2.": lambda resolution, arguments: log2_resolution(resolution),
    "invgan.nn.biggan.": lambda resolution, arguments: num_resamplings(resolution),
    "invgan.nn.dcgan.": lambda resolution, arguments: dcgan_base_size(
        resolution, arguments["num_scales"]
    ),
}
_INTERPOLATION = re.compile(r"^\$\{([\w.]+)\}$")


class ConfigValueError(ValueError):
    """Config values that cannot work, each named with its key and the values it allows."""


def _mappings(tree: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted path, mapping) for every mapping in a nested dict/list tree, itself included."""
    if isinstance(tree, dict):
        yield path, tree
        for key, value in tree.items():
            yield from _mappings(value, f"{path}.{key}")
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from _mappings(value, f"{path}.{index}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _value_problems(path: str, node: dict[str, Any]) -> Iterator[str]:
    for key, value in node.items():
        if not _is_number(value):
            continue
        if key.endswith(NON_NEGATIVE_SUFFIXES) and value < 0:
            yield f"{path}.{key}={value}: must be >= 0 (0 turns the term off)"
        if key in POSITIVE_KEYS and value <= 0:
            yield f"{path}.{key}={value}: must be > 0 (a learning rate or its multiplier)"


def _with_defaults(node: dict[str, Any]) -> dict[str, Any]:
    """The node's arguments, with the defaults of its class for those it leaves out."""
    parameters = inspect.signature(hydra.utils.get_object(node["_target_"])).parameters.values()
    defaults = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    return {**defaults, **node}


def _resolution_problems(cfg: DictConfig, path: str, node: dict[str, Any]) -> Iterator[str]:
    target = node.get("_target_")
    if not isinstance(target, str) or not _is_number(node.get("resolution")):
        return
    rule = next((r for prefix, r in RESOLUTION_RULES.items() if target.startswith(prefix)), None)
    if rule is None:
        return
    # Name the key the user sets: networks take `resolution: ${data.resolution}`.
    raw = OmegaConf.to_container(OmegaConf.select(cfg, path), resolve=False)["resolution"]
    source = _INTERPOLATION.match(str(raw))
    key = source.group(1) if source else f"{path}.resolution"
    arguments = _with_defaults(node)
    try:
        rule(node["resolution"], arguments)
    except ValueError as error:
        network = target.rsplit(".", 1)[-1]
        yield f"{key}={node['resolution']}: {path} ({network}) cannot use it: {error}"


def config_problems(cfg: DictConfig) -> list[str]:
    """Every unusable value under `model` (and the data resolution it builds with)."""
    model = OmegaConf.to_container(cfg.model, resolve=True, throw_on_missing=False)
    problems: list[str] = []
    for path, node in _mappings(model, "model"):
        problems += [*_value_problems(path, node), *_resolution_problems(cfg, path, node)]
    return problems


def check_config(cfg: DictConfig) -> None:
    """Raise `ConfigValueError` listing every unusable value, before anything is built."""
    problems = config_problems(cfg)
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise ConfigValueError(f"config values that cannot train:\n{listed}")
