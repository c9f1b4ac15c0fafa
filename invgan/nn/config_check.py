"""The check every entry point runs on its composed config: each value by the rules of
`invgan.utils.config_checks`, and each network's layer schedule against its resolution.

The schedules are the networks' own rules, so the check that reads them lives here, the
lowest package that knows them; `invgan.utils` knows no network.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from invgan.nn.biggan.resolution import check_widths, num_resamplings
from invgan.nn.dcgan import base_size
from invgan.nn.stylegan2.widths import feature_width, log2_resolution
from invgan.utils.config_checks import ScheduleRule, config_problems, raise_problems


def _stylegan2_schedule(path: str, arguments: dict[str, Any]) -> None:
    resolution = arguments["resolution"]
    log2_resolution(resolution)
    # Widths shrink with resolution: the last layer's is the narrowest.
    widths = ("channel_base", "channel_multiplier", "channel_max")
    feature_width(resolution, *(arguments[name] for name in widths))


def _dcgan_schedule(path: str, arguments: dict[str, Any]) -> None:
    base_size(arguments["resolution"], arguments["num_scales"])


def _biggan_schedule(path: str, arguments: dict[str, Any], extra_blocks: int) -> None:
    blocks = num_resamplings(arguments["resolution"]) + extra_blocks
    check_widths(arguments["width_multipliers"], blocks, path, "one per block at this resolution")


# Networks whose layer schedule needs particular resolutions (and widths that fit them), by the
# module of their class, with the other arguments the rule reads; each raises ValueError naming
# the allowed values. A node's arguments have its class's defaults filled in.
SCHEDULE_RULES: dict[str, ScheduleRule] = {
    "invgan.nn.stylegan2.": (
        _stylegan2_schedule,
        ("channel_base", "channel_multiplier", "channel_max"),
    ),
    "invgan.nn.biggan.generator.": (
        lambda path, arguments: _biggan_schedule(path, arguments, 0),
        ("width_multipliers",),
    ),
    "invgan.nn.biggan.discriminator.": (
        lambda path, arguments: _biggan_schedule(path, arguments, 1),
        ("width_multipliers",),
    ),
    "invgan.nn.dcgan.": (
        _dcgan_schedule,
        ("num_scales",),
    ),
}


def check_config(cfg: DictConfig) -> None:
    """Raise `ConfigValueError` listing every unusable value and every network whose layer
    schedule cannot use its resolution, before anything is built."""
    raise_problems(config_problems(cfg, SCHEDULE_RULES))
