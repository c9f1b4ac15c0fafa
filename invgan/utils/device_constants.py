"""Small constant tensors built on the device from Python numbers, without a host copy."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def filled_segments(
    values: Sequence[float], like: torch.Tensor, sizes: Sequence[int] | None = None
) -> torch.Tensor:
    """A 1-D tensor on `like`'s device and dtype whose consecutive segments of `sizes` (one
    element each by default) hold `values`: a zero fill and one foreach kernel for them all."""
    # torch.tensor(values, device=...) copies from the host, which makes the host wait for the
    # GPU to catch up and cannot be captured in a CUDA graph; a foreach kernel carries its
    # scalars as kernel arguments instead.
    sizes = [1] * len(values) if sizes is None else list(sizes)
    filled = like.new_zeros(sum(sizes))
    torch._foreach_add_(list(filled.split(sizes)), list(values))
    return filled
