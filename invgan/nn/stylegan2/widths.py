"""The resolution schedule and feature-map widths shared by the StyleGAN2 networks."""

from __future__ import annotations

import functools
from collections.abc import Callable


def log2_resolution(resolution: int) -> int:
    """log2 of `resolution`, which must be a power of two of at least 4."""
    if resolution < 4 or resolution & (resolution - 1):
        raise ValueError(
            "StyleGAN2 resolution must be a power of two >= 4 (8, 16, ..., 1024), "
            f"got {resolution}"
        )
    return resolution.bit_length() - 1


def feature_width(
    resolution: int, channel_base: int, channel_multiplier: int, channel_max: int
) -> int:
    """Channels of the feature maps at `resolution`: channel_base * multiplier / res, capped.

    The defaults channel_base=16384, channel_max=512 reproduce the table of the official
    networks (512 up to 32 px, then 256 * multiplier at 64 px, halving at each doubling).
    """
    width = min(channel_max, channel_base * channel_multiplier // resolution)
    if width < 1:
        raise ValueError(
            f"no channels left at {resolution} px: channel_base={channel_base} * "
            f"channel_multiplier={channel_multiplier} must be at least the resolution"
        )
    return width


def width_schedule(
    channel_base: int, channel_multiplier: int, channel_max: int
) -> Callable[[int], int]:
    """`feature_width` with the network's settings bound: resolution -> channels."""
    return functools.partial(
        feature_width,
        channel_base=channel_base,
        channel_multiplier=channel_multiplier,
        channel_max=channel_max,
    )
