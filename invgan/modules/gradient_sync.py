"""Gradient averaging across DDP processes for the manually optimised GAN recipes.

InvGAN and the in-domain encoder take several backward passes per iteration, some limited to
a subset of the parameters (`backward(inputs=...)`). DDP's reducer expects one backward over
every used parameter per forward and fails on that ("Expected to have finished reduction in
the prior iteration"). So these recipes switch the reducer off for their steps (as
`DistributedDataParallel.no_sync` does) and average the gradients themselves, once per
iteration after the last backward, in one flat all-reduce, as StyleGAN2-ADA's training loop
does.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def stop_reducer_sync(trainer: pl.Trainer) -> None:
    """Keep DDP from synchronising gradients in the coming forward/backward passes (call
    before each training step's forward, i.e. in `on_train_batch_start`)."""
    model = trainer.strategy.model
    if isinstance(model, DistributedDataParallel):
        model.require_backward_grad_sync = False


def average_gradients(parameters: Iterable[nn.Parameter], trainer: pl.Trainer) -> None:
    """Replace each gradient by its mean over the processes (no-op in one process).

    Every process must hold gradients for the same parameters, which the recipes guarantee:
    their code path depends only on counters that all processes share.
    """
    if trainer.world_size == 1 or not dist.is_available() or not dist.is_initialized():
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([grad.flatten() for grad in grads])
    dist.all_reduce(flat)
    flat /= trainer.world_size
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()
