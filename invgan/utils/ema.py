"""Exponential moving average of a module's weights."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Iterator
from typing import cast

import torch
from torch import nn
from torch.utils._foreach_utils import _group_tensors_by_device_and_dtype


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of `module` with gradients disabled, used as an EMA target."""
    clone = copy.deepcopy(module)
    clone.requires_grad_(False)
    return clone


@torch.no_grad()
def update_ema(target: nn.Module, source: nn.Module, decay: float | torch.Tensor) -> None:
    """target <- decay * target + (1 - decay) * source for parameters; buffers are copied.

    Buffers (batch-norm running statistics) are copied rather than averaged so that the EMA
    network normalises with the statistics its weights were last trained under. `decay` may be
    a 0-dim tensor on the parameters' device, which a captured CUDA graph reads at each replay.
    """
    # One foreach kernel per (device, dtype) group instead of one kernel per tensor: a small
    # network's training step is bound by kernel launches on a GPU.
    for targets, sources in _grouped_pairs(target.parameters(), source.parameters()):
        if isinstance(decay, torch.Tensor):
            # Foreach lerp takes a Python weight or same-shaped weight tensors, not a 0-dim
            # tensor, so t <- s + decay * (t - s) in place, three kernels.
            torch._foreach_sub_(targets, sources)
            torch._foreach_mul_(targets, decay)
            torch._foreach_add_(targets, sources)
        else:
            torch._foreach_lerp_(targets, sources, 1.0 - decay)
    for targets, sources in _grouped_pairs(target.buffers(), source.buffers()):
        torch._foreach_copy_(targets, sources)


def _grouped_pairs(
    targets: Iterable[torch.Tensor], sources: Iterable[torch.Tensor]
) -> list[tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """Paired target and source tensors grouped by device and dtype, as foreach kernels need."""
    targets, sources = list(targets), list(sources)
    if len(targets) != len(sources):
        raise ValueError(
            f"EMA target has {len(targets)} tensors where its source has {len(sources)}"
        )
    if not targets:
        return []
    # torch's helper is typed for optional tensors; every tensor here is present.
    tensor_lists: list[list[torch.Tensor | None]] = [[*targets], [*sources]]
    groups = _group_tensors_by_device_and_dtype(tensor_lists)
    return [
        (cast(list[torch.Tensor], group_targets), cast(list[torch.Tensor], group_sources))
        for (group_targets, group_sources), _ in groups.values()
    ]


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Temporarily put modules in eval mode, restoring each one's previous mode after."""
    previous = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, was_training in zip(modules, previous, strict=True):
            m.train(was_training)
