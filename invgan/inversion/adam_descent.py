"""Adam on free tensors with the projector's learning-rate ramp: the loop that latent
optimisation, multi-code inversion and the self-expressive layer of PmSFC share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

from invgan.inversion.schedule import ramped_learning_rate
from invgan.utils.config_checks import ConfigValueError, check_count

Result = TypeVar("Result")


def adam_betas(betas: Sequence[float], key: str = "inversion.betas") -> tuple[float, float]:
    """Adam's (beta1, beta2) from a config list, refused unless it has two entries."""
    if len(betas) != 2:
        raise ConfigValueError(
            f"{key}={list(betas)} must be two numbers (beta1, beta2), e.g. [0.9, 0.999]"
        )
    return float(betas[0]), float(betas[1])


def adam_descent(
    params: Sequence[torch.Tensor],
    loss: Callable[[int], torch.Tensor],
    steps: int,
    lr: float,
    lr_rampup: float = 0.05,
    lr_rampdown: float = 0.25,
    betas: tuple[float, float] = (0.9, 0.999),
    after_step: Callable[[], None] | None = None,
) -> None:
    """Minimise `loss(step).sum()` over `params` (updated in place) for `steps` Adam steps,
    calling `after_step` after each (e.g. to renormalise noise maps).

    Gradients are taken for `params` only, so nothing accumulates in the frozen networks the
    loss runs through (an encoder in the loss may keep trainable weights); a tensor the loss
    does not use gets a zero gradient and stays put.
    """
    check_count("steps", steps)
    for tensor in params:
        tensor.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=lr, betas=betas)
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = ramped_learning_rate(step, steps, lr, lr_rampup, lr_rampdown)
        grads = torch.autograd.grad(loss(step).sum(), params, allow_unused=True)
        for tensor, grad in zip(params, grads, strict=True):
            tensor.grad = torch.zeros_like(tensor) if grad is None else grad
        optimizer.step()
        if after_step is not None:
            after_step()
    for tensor in params:
        tensor.requires_grad_(False)


def optimize_in_chunks(
    optimize: Callable[..., Result], size: int | None, *batches: torch.Tensor | None
) -> list[Result]:
    """`optimize(*chunk)` on `size` images of every batch at a time (all of them when None);
    a None batch (e.g. no mask) stays None in every chunk.

    Evaluation runs under no_grad or inference mode; the optimiser needs autograd, and
    inference tensors cannot be saved for backward, hence autograd on and the clones.
    """
    count = next(batch for batch in batches if batch is not None).shape[0]
    starts = range(0, count, size or count)
    with torch.inference_mode(False), torch.enable_grad():
        return [
            optimize(*(None if b is None else b[s : s + (size or count)].clone() for b in batches))
            for s in starts
        ]
