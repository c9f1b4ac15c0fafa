"""Exponential moving average of a module's weights."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import nn


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of `module` with gradients disabled, used as an EMA target."""
    clone = copy.deepcopy(module)
    clone.requires_grad_(False)
    return clone


@torch.no_grad()
def update_ema(target: nn.Module, source: nn.Module, decay: float) -> None:
    """target <- decay * target + (1 - decay) * source for parameters; buffers are copied.

    Buffers (batch-norm running statistics) are copied rather than averaged so that the EMA
    network normalises with the statistics its weights were last trained under.
    """
    for p_target, p_source in zip(target.parameters(), source.parameters(), strict=True):
        p_target.lerp_(p_source.detach(), 1.0 - decay)
    for b_target, b_source in zip(target.buffers(), source.buffers(), strict=True):
        b_target.copy_(b_source)


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
