"""The one place where images change value range: datasets give [0, 1], networks use [-1, 1]."""

from __future__ import annotations

import torch


def to_signed_range(images: torch.Tensor) -> torch.Tensor:
    """Map images from [0, 1] (datasets) to [-1, 1] (networks, losses, metrics)."""
    return images * 2.0 - 1.0


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Map images from [-1, 1] to [0, 1] for saving, clamping generator overshoot."""
    return ((images + 1.0) / 2.0).clamp(0.0, 1.0)
