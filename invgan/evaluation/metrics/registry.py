"""The registry of named metrics, and which of them a `metrics` config runs.

A metric is one file under `invgan/evaluation/metrics/` whose class is decorated with
`@register`, plus its block in conf/metrics/default.yaml; `metrics.which` lists the names to
run (null: every metric whose block is enabled).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from invgan.evaluation.metrics.base import Metric
from invgan.utils.config_checks import ConfigValueError

# Name -> metric class, in registration order: the order results are computed and listed.
METRICS: dict[str, type[Metric]] = {}
MetricClass = TypeVar("MetricClass", bound=type[Metric])


def register(metric: MetricClass) -> MetricClass:
    """Class decorator: make a metric selectable by its `name`."""
    if metric.name in METRICS:
        raise ValueError(
            f"two metrics are named {metric.name!r} ({METRICS[metric.name].__qualname__} and "
            f"{metric.__qualname__}): the name is the result key, so it must be unique"
        )
    METRICS[metric.name] = metric
    return metric


def metric_names() -> list[str]:
    """Every registered name, in the order results are listed."""
    return list(METRICS)


def check_names(names: Iterable[str]) -> None:
    """Refuse names that no metric is registered under, listing the known ones."""
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ConfigValueError(
            f"metrics.which: unknown {unknown}; the known metrics are {metric_names()}. List "
            "names from these, or set metrics.which=null to run every metric whose "
            "metrics.<block>.enabled is true"
        )


def _options(metrics_cfg: Mapping[str, Any], metric: type[Metric]) -> dict[str, Any]:
    block = metrics_cfg.get(metric.block)
    if block is None:
        raise ConfigValueError(
            f"metrics.which: {metric.name!r} reads its options from metrics.{metric.block}, "
            f"which the config lacks: add a `{metric.block}:` block to conf/metrics/default.yaml"
        )
    if isinstance(block, DictConfig):
        return OmegaConf.to_container(block, resolve=True)  # type: ignore[return-value]
    return dict(block)


def _named(metrics_cfg: Mapping[str, Any]) -> list[str]:
    """The names `metrics.which` lists, refused unless each is registered."""
    which = metrics_cfg["which"]
    if isinstance(which, str) or not isinstance(which, Sequence):
        raise ConfigValueError(
            f"metrics.which={which!r}: must be a list of metric names (e.g. "
            "metrics.which=[mae,rand_fid]) or null for every enabled metric"
        )
    check_names(which)
    return [name for name in METRICS if name in which]


def select_metrics(metrics_cfg: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The metrics a `metrics` config runs, in registry order, each with its block's options:
    the names in `metrics.which`, or with `which: null` every metric whose block is enabled."""
    for metric in METRICS.values():  # every block is checked, selected or not
        metric.check(metrics_cfg)
    if metrics_cfg.get("which") is None:
        names = [name for name, metric in METRICS.items() if metric.enabled(metrics_cfg)]
    else:
        names = _named(metrics_cfg)
    return {name: _options(metrics_cfg, METRICS[name]) for name in names}
