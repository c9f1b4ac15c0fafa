"""The resolution schedule shared by the BigGAN generator and discriminator."""

from __future__ import annotations

from collections.abc import Sequence

BASE_SIZE = 4


def num_resamplings(resolution: int) -> int:
    """How many 2x up- (G) or down-samplings (D) lie between the 4x4 base grid and `resolution`."""
    ratio = resolution // BASE_SIZE
    if resolution < 2 * BASE_SIZE or ratio * BASE_SIZE != resolution or ratio & (ratio - 1):
        allowed = ", ".join(str(BASE_SIZE << k) for k in range(1, 9))
        raise ValueError(
            f"BigGAN resolution must be 4 * 2**k for k >= 1 ({allowed}, ...), got {resolution}"
        )
    return ratio.bit_length() - 1


def check_widths(width_multipliers: Sequence[int], needed: int, network: str, rule: str) -> None:
    """Raise unless there are `needed` positive width multipliers (`rule` says why)."""
    if len(width_multipliers) != needed or min(width_multipliers, default=1) < 1:
        raise ValueError(
            f"{network}.width_multipliers={list(width_multipliers)}: need {needed} positive "
            f"integers, {rule}"
        )


def attention_index(
    block_resolutions: Sequence[int], attention_resolution: int | None, network: str
) -> int | None:
    """Index of the first block whose output has `attention_resolution` (None: no attention)."""
    if attention_resolution is None:
        return None
    if attention_resolution not in block_resolutions:
        allowed = sorted(set(block_resolutions))
        raise ValueError(
            f"{network}.attention_resolution={attention_resolution}; allowed: {allowed} "
            "(a block output resolution) or null"
        )
    return list(block_resolutions).index(attention_resolution)
