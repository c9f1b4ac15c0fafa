"""The first affine map a generator applies to its code, y = A w + b, as closed-form direction
finders (SeFa) read it: each backbone knows where its A is, so callers need no class checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class CodeAffineGenerator(Protocol):
    def code_affine_weight(self, layers: Sequence[int] | None = None) -> torch.Tensor:
        """A (units, w_dim): the weight of the first affine map applied to the code (for W+
        generators, the maps of the chosen layers stacked; None: every layer)."""
        ...


def refuse_layers(generator: object, layers: Sequence[int] | None) -> None:
    """A generator that takes one code for every layer has no layers to choose."""
    if layers is not None:
        raise ValueError(
            f"layers={list(layers)} only applies to StyleGAN2 (W+ codes); "
            f"{type(generator).__name__} takes one code: leave layers=null"
        )
