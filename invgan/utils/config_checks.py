"""Config values that cannot work, refused before anything is built, each named with its full
key, the value given and the values allowed.

Hydra refuses unknown keys; these rules cover the values. A node with a `_target_` is checked
against the type hints of what it builds (its function, or its class's `__init__` and, for
`**kwargs`, those of its base classes); option trees without a `_target_` (`metrics`, the
entry points' own keys) against `OPTION_TYPES`. Every number must be finite and within the
range its key's name implies (`RANGE_RULES`: weights >= 0, learning rates > 0, sizes and
counts >= 1, ...). The rules match keys by name, so new recipes and networks are covered
without being listed here; recipes that are built without a config (tests, library use) call
`check_arguments` on their arguments, so both ways in share these rules. A whole composed
config is checked by `invgan.nn.config_check.check_config`, which adds the networks' layer
schedules (this module knows no network).
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import hydra
from omegaconf import DictConfig, OmegaConf

from invgan.utils.type_hints import accepts, describe, is_number, lists_choices, parameter_types

MISSING = "???"
_INTERPOLATION = re.compile(r"^\$\{(\.*)([\w.]+)\}$")


class ConfigValueError(ValueError):
    """Config values that cannot work, each named with its key and the values it allows."""


# ------------------------------------------------------------------------------ value ranges
@dataclass(frozen=True)
class Bounds:
    """What a number must be: an integer or any finite number, within optional bounds."""

    integer: bool = False
    low: float | None = None
    low_open: bool = False
    high: float | None = None
    high_open: bool = False
    note: str = ""  # why, or what the bounds mean

    def allows(self, value: int | float) -> bool:
        """Whether a finite number of the right kind lies within the bounds."""
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def range_text(self) -> str:
        """`>= 1`, `> 0` or `in [0, 1)`, with the note."""
        if self.low is not None and self.high is not None:
            text = (
                f"in {'(' if self.low_open else '['}{self.low:g}, "
                f"{self.high:g}{')' if self.high_open else ']'}"
            )
        elif self.low is not None:
            text = f"{'>' if self.low_open else '>='} {self.low:g}"
        elif self.high is not None:
            text = f"{'<' if self.high_open else '<='} {self.high:g}"
        else:
            text = ""
        return f"{text} ({self.note})" if self.note else text

    def kind_text(self) -> str:
        """`an integer >= 1`, `a finite number > 0`, ..."""
        kind = "an integer" if self.integer else "a finite number"
        return f"{kind} {self.range_text()}".rstrip()


@dataclass(frozen=True)
class RangeRule:
    """The bounds of the numbers a key holds, by the key's name; `listed` keys hold a
    non-empty list of such numbers (`scalar_too`: or one number)."""

    bounds: Bounds
    names: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    listed: bool = False
    scalar_too: bool = False
    length: int | None = None  # listed keys: exactly this many numbers
    nullable: bool = False  # null allowed where no type hint says (keys passed via **kwargs)
    choices: tuple[int, ...] = ()  # the only numbers allowed, when only some are

    def matches(self, key: str) -> bool:
        """Whether the rule is about `key` (the last part of a dotted config key)."""
        return key in self.names or key.endswith(self.suffixes)

    def kind_text(self) -> str:
        """What a value of the key must be, in words."""
        if self.choices:
            return "one of " + ", ".join(str(choice) for choice in self.choices)
        if not self.listed:
            return self.bounds.kind_text()
        kind = "integers" if self.bounds.integer else "finite numbers"
        count = "a non-empty list of" if self.length is None else f"a list of {self.length}"
        items = f"{count} {kind} {self.bounds.range_text()}".rstrip()
        return f"{self.bounds.kind_text()} or {items}" if self.scalar_too else items


_COUNT = Bounds(integer=True, low=1)
# Sizes, counts, widths, steps and intervals: integers >= 1.
_COUNT_NAMES = (
    "batch_size", "count", "max_images", "subsets", "repeats", "steps", "restarts",
    "resolution", "channels", "num_layers", "n_mlp", "num_scales", "convs_per_scale",
    "num_images", "every_n_iterations", "channel_base", "channel_max", "channel_multiplier",
    "stddev_group", "num_codes", "num_subspaces", "max_blobs", "coarse_end", "medium_end",
    "accumulate_grad_batches", "iterations",
)  # fmt: skip
_COUNT_SUFFIXES = (
    "_batch_size", "_dim", "_width", "_count", "_interval", "_resolution", "_samples", "_size",
)  # fmt: skip
# Integers where 0 means none (workers, warm-up steps, held-out images, shift, a pool of past
# codes) or a first index.
_NON_NEGATIVE_NAMES = (
    "num_workers", "warmup", "val_size", "translate", "num_train", "num_val", "num_test", "layer",
    "w_pool_size",
)  # fmt: skip
_UNIT_INTERVAL = Bounds(low=0, high=1)
_BELOW_ONE = Bounds(low=0, high=1, high_open=True)
_POSITIVE = Bounds(low=0, low_open=True)
# First match wins: names before suffixes.
RANGE_RULES = (
    RangeRule(Bounds(low=0, low_open=True, note="a learning rate or its multiplier"),
              names=("lr", "lr_mlp")),
    RangeRule(Bounds(low=0, high=1, note="1 freezes the average"), names=("ema_decay",)),
    RangeRule(_BELOW_ONE, names=("val_fraction", "test_fraction")),
    RangeRule(Bounds(low=0, low_open=True, high=1), names=("crop_fraction",)),
    RangeRule(_UNIT_INTERVAL, names=("lr_rampup", "lr_rampdown", "style_mixing_prob")),
    RangeRule(_BELOW_ONE, names=("betas",), listed=True),
    RangeRule(_POSITIVE, names=("mmd_bandwidths",), listed=True),
    RangeRule(_COUNT, names=("width_multipliers",), listed=True),
    RangeRule(Bounds(integer=True, low=1, note="units of the four IR stages"),
              names=("blocks",), listed=True, length=4, nullable=True),
    RangeRule(_COUNT, names=("depth",), nullable=True, choices=(50, 100, 152)),  # IR depths
    # LPIPS inputs upsampled to this side first; null: compared at their own size.
    RangeRule(_COUNT, names=("resize",), nullable=True),
    RangeRule(Bounds(integer=True, low=2, note="a Frechet distance needs 2 images"),
              names=("num_samples",), listed=True, scalar_too=True),
    RangeRule(_POSITIVE, names=("interval", "difference_gain", "val_check_interval")),
    RangeRule(Bounds(low=0, note="0 turns the penalty off"), names=("noise_regularization",)),
    RangeRule(Bounds(integer=True), names=("seed",)),
    RangeRule(Bounds(integer=True, low=0), names=_NON_NEGATIVE_NAMES),
    RangeRule(_COUNT, names=_COUNT_NAMES),
    RangeRule(Bounds(low=0, note="0 turns the term off"), suffixes=("_weight", "_gamma")),
    RangeRule(_COUNT, suffixes=_COUNT_SUFFIXES),
)  # fmt: skip

# Option trees that no `_target_` types: what each key holds.
OPTION_TYPES: dict[str, Any] = {
    "seed": int,
    "batch_size": int | None,
    "cuda.tf32": bool,
    "cuda.cudnn_benchmark": bool,
    "metrics.which": list[str] | None,
    "metrics.reconstruction.enabled": bool,
    "metrics.reconstruction.max_images": int | None,
    "metrics.lpips.enabled": bool,
    "metrics.lpips.max_images": int | None,
    "metrics.lpips.nets": list[Literal["alex", "vgg"]],
    "metrics.lpips.resize": int | None,
    "metrics.grid.enabled": bool,
    "metrics.grid.count": int,
    "metrics.grid.difference_gain": float,
    "metrics.tiled_mae.enabled": bool,
    "metrics.tiled_mae.max_images": int | None,
    "metrics.tiled_mae.batch_size": int,
    "metrics.fid.enabled": bool,
    "metrics.fid.which": list[str],
    "metrics.fid.num_samples": int | list[int],
    "metrics.fid.real_count": int | None,
    "metrics.kid.enabled": bool,
    "metrics.kid.num_samples": int | list[int],
    "metrics.kid.subsets": int,
    "metrics.kid.subset_size": int,
    "metrics.kid.real_count": int | None,
    "metrics.runtime.enabled": bool,
    "metrics.runtime.batch_size": int,
    "metrics.runtime.warmup": int,
    "metrics.runtime.repeats": int,
}


def range_rule(key: str) -> RangeRule | None:
    """The range rule for a key's last part, if any."""
    return next((rule for rule in RANGE_RULES if rule.matches(key)), None)


# ------------------------------------------------------------------------------ problems
def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _numbers(value: Any) -> list[Any]:
    if is_number(value):
        return [value]
    return [v for v in value if is_number(v)] if isinstance(value, list | tuple) else []


def _has_rule_kind(rule: RangeRule, value: Any) -> bool:
    """Whether an untyped value is of the kind its range rule speaks of (a number, or a list
    of numbers for listed keys)."""
    if is_number(value):
        return not rule.listed or rule.scalar_too
    return rule.listed and isinstance(value, list | tuple) and all(map(is_number, value))


def value_problem(key: str, value: Any, annotation: Any = None) -> str | None:
    """Why `value` cannot be the config value `key` (dotted), or None when it can.

    `annotation` is the type hint of the parameter the value goes to (None: unknown, then the
    range rule of the key's name also says the kind); every number must be finite and within
    the range rule of the key's last part.
    """
    rule = range_rule(key.rsplit(".", 1)[-1])
    shown = f"{key}={_shown(value)}: must be"
    if annotation is not None and not accepts(annotation, value):
        # The range rule says more than a numeric hint; listed choices say it all.
        if rule is None or lists_choices(annotation):
            return f"{shown} {describe(annotation)}"
        return f"{shown} {rule.kind_text()}{' or null' if accepts(annotation, None) else ''}"
    if annotation is None and rule is not None:  # the rule also says the kind
        if not (rule.nullable if value is None else _has_rule_kind(rule, value)):
            return f"{shown} {rule.kind_text()}"
    numbers = _numbers(value)
    if any(not math.isfinite(v) for v in numbers):
        return f"{shown} {rule.kind_text() if rule is not None else 'a finite number'}"
    if rule is None or not numbers and not (rule.listed and isinstance(value, list | tuple)):
        return None
    if rule.listed and (not numbers or rule.length not in (None, len(numbers))):
        return f"{shown} {rule.kind_text()}"
    if rule.bounds.integer and not all(isinstance(v, int) for v in numbers):
        return f"{shown} {rule.kind_text()}"
    if rule.choices and not all(v in rule.choices for v in numbers):
        return f"{shown} {rule.kind_text()}"
    if not all(rule.bounds.allows(v) for v in numbers):
        # A number out of range: the kind is right, the range is what is wrong.
        return f"{shown} {rule.kind_text() if rule.listed else rule.bounds.range_text()}"
    return None


def _target(node: Mapping[str, Any]) -> Callable[..., Any] | None:
    target = node.get("_target_")
    if not isinstance(target, str):
        return None
    try:
        return hydra.utils.get_object(target)
    except Exception:  # an unknown target is instantiate's error to report
        return None


def argument_problems(
    path: str, arguments: Mapping[str, Any], target: Callable[..., Any] | None = None
) -> list[str]:
    """Why the arguments under config key `path` cannot be passed to `target` (None: an
    option tree, typed by `OPTION_TYPES`)."""
    hints = parameter_types(target) if target is not None else {}
    problems = []
    for key, value in arguments.items():
        if key.startswith("_") or (isinstance(value, str) and value == MISSING):
            continue
        full = f"{path}.{key}" if path else key
        if OmegaConf.is_config(value):  # instantiate passes lists and dicts as configs
            value = OmegaConf.to_container(value, resolve=True)
        annotation = hints.get(key) if target is not None else OPTION_TYPES.get(full)
        problem = value_problem(full, value, annotation)
        if problem:
            problems.append(problem)
    return problems


def check_arguments(path: str, target: Callable[..., Any], arguments: Mapping[str, Any]) -> None:
    """Raise `ConfigValueError` naming every argument under `path` that `target` cannot take;
    for recipes built without a config, with the rules `check_config` applies."""
    raise_problems(argument_problems(path, arguments, target))


def check_count(key: str, value: Any) -> int:
    """`value` when it is an integer >= 1 (a number of steps, restarts, iterations), else
    `ConfigValueError` naming `key`: `RANGE_RULES`' rule for counts, for code that takes one
    without a config."""
    if isinstance(value, bool) or not isinstance(value, int) or not _COUNT.allows(value):
        raise ConfigValueError(f"{key}={_shown(value)}: must be {_COUNT.kind_text()}")
    return value


def _nodes(tree: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted path, mapping) for every mapping in a nested dict/list tree, itself included."""
    if isinstance(tree, dict):
        yield path, tree
        for key, value in tree.items():
            yield from _nodes(value, f"{path}.{key}" if path else str(key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from _nodes(value, f"{path}.{index}")


# A rule about a network's layer schedule: (check, the arguments besides `resolution` that it
# reads); the check takes the node's path and arguments and raises ValueError naming the values
# allowed. The networks give theirs, by the module of their class
# (`invgan.nn.config_check.SCHEDULE_RULES`): this module knows no network.
ScheduleRule = tuple[Callable[[str, dict[str, Any]], None], tuple[str, ...]]


def _with_defaults(target: Callable[..., Any], node: dict[str, Any]) -> dict[str, Any]:
    """The node's arguments, with the defaults of its class for those it leaves out."""
    parameters = inspect.signature(target).parameters.values()
    defaults = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    return {**defaults, **node}


def source_key(cfg: DictConfig, key: str) -> str:
    """The key to set for `key`'s value: where its interpolations lead (networks take
    `resolution: ${data.resolution}`, which may be `${.patch_size}`), else `key` itself."""
    for _ in range(16):  # a longer chain would be a cycle, which OmegaConf refuses anyway
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if not isinstance(node, DictConfig) or leaf not in node:
            break
        values = cast(dict[str, Any], OmegaConf.to_container(node, resolve=False))
        link = _INTERPOLATION.match(str(values[leaf]))
        if link is None:
            break
        dots, target = link.groups()
        base = parent.split(".") if parent else []
        key = ".".join([*base[: len(base) - len(dots) + 1], target] if dots else [target])
    return key


def _schedule_problems(
    cfg: DictConfig, path: str, node: dict[str, Any], rules: Mapping[str, ScheduleRule]
) -> Iterator[str]:
    target = node.get("_target_")
    if not isinstance(target, str) or not is_number(node.get("resolution")):
        return
    found = next((r for prefix, r in rules.items() if target.startswith(prefix)), None)
    if found is None:
        return
    rule, read = found
    key = source_key(cfg, f"{path}.resolution")
    arguments = _with_defaults(hydra.utils.get_object(target), node)
    try:
        rule(path, arguments)
    except ValueError as error:
        network = target.rsplit(".", 1)[-1]
        given = ", ".join(f"{path}.{name}={_shown(arguments[name])}" for name in read)
        yield f"{key}={node['resolution']}: {path} ({network}) cannot use it with {given}: {error}"


def config_problems(
    cfg: DictConfig, schedule_rules: Mapping[str, ScheduleRule] | None = None
) -> list[str]:
    """Every unusable value of a composed config (all of it but the `hydra` node), and every
    network node whose layer schedule `schedule_rules` refuses (by its `_target_`'s prefix)."""
    tree = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False))
    tree.pop("hydra", None)
    problems: list[str] = []
    for path, node in _nodes(tree, ""):
        target = _target(node)
        if "_target_" in node and target is None:
            continue
        node_problems = argument_problems(path, node, target)
        problems += node_problems
        if not node_problems:
            problems += _schedule_problems(cfg, path, node, schedule_rules or {})
    return problems


def raise_problems(problems: list[str]) -> None:
    """Raise one `ConfigValueError` listing `problems`, if there are any."""
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise ConfigValueError(f"config values that cannot work:\n{listed}")
