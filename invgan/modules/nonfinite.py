"""What a training recipe does with a step whose loss or gradient is not finite
(`model.nonfinite`): stop the run with an error naming the terms, or skip the step."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from invgan.modules.gradient_sync import average_gradients, stop_reducer_sync
from invgan.utils.log_steps import logs_this_step

log = logging.getLogger(__name__)

NONFINITE_POLICIES = ("stop", "skip")


def _non_finite(names: list[str], values: list[float]) -> list[str]:
    """'name = value' for each value that is NaN or infinite."""
    return [f"{n} = {v}" for n, v in zip(names, values, strict=True) if not math.isfinite(v)]


class NonFiniteGuardModule(pl.LightningModule):
    """Base of the training recipes: `finite_step` vets one iteration before its optimizer steps.

    With `nonfinite="stop"` a non-finite loss term or gradient raises `FloatingPointError`
    naming the terms and the iteration, before any parameter changes. With `"skip"` the
    iteration's gradients are dropped (set to None, so optimizers leave both the parameters
    and their own state alone), a warning names the terms, and `train/skipped_steps` counts
    the skipped iterations of this process. Subclasses keep an `iteration` counter.

    Manually optimised recipes (several backward passes per iteration) have their gradients
    averaged over DDP processes here, by hand, instead of by DDP's reducer
    (`invgan.modules.gradient_sync`).

    Gradient accumulation: an iteration (one optimizer step per optimizer, one `iteration`)
    spans `micro_batches` training batches. Lightning accumulates for automatically optimised
    recipes (`trainer.accumulate_grad_batches`); manually optimised ones cannot use that, so
    `train.py` hands the same setting to `accumulate_grad_batches` here, `manual_backward`
    divides each loss by it, and the recipe zeroes gradients when `starts_iteration` and steps
    when `ends_iteration`. The last, shorter window of an epoch steps too (as in Lightning).
    """

    def __init__(self, nonfinite: str = "stop") -> None:
        super().__init__()
        if nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"model.nonfinite={nonfinite!r}; allowed: {NONFINITE_POLICIES}")
        self.nonfinite = nonfinite
        self.skipped_steps = 0
        self.accumulate_grad_batches = 1

    @property
    def micro_batches(self) -> int:
        """Training batches per iteration (1 without gradient accumulation)."""
        if self.automatic_optimization:
            return int(self.trainer.accumulate_grad_batches)
        return self.accumulate_grad_batches

    def starts_iteration(self, batch_idx: int) -> bool:
        """Whether batch `batch_idx` of the epoch is the first of an iteration."""
        return batch_idx % self.micro_batches == 0

    def ends_iteration(self, batch_idx: int) -> bool:
        """Whether batch `batch_idx` of the epoch completes an iteration (its last batch, or the
        epoch's last)."""
        last_of_epoch = batch_idx + 1 == self.trainer.num_training_batches
        return (batch_idx + 1) % self.micro_batches == 0 or last_of_epoch

    def logs_this_step(self, batch_idx: int) -> bool:
        """Whether this training batch's values are logged (`invgan.utils.log_steps`)."""
        return logs_this_step(self.trainer, batch_idx)

    def manual_backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        """Backward of `loss` divided by the micro-batches of an iteration, so that accumulated
        gradients are those of the mean loss over the iteration's batches."""
        super().manual_backward(loss / self.accumulate_grad_batches, *args, **kwargs)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Keep DDP's reducer out of manually optimised steps: `finite_step` averages."""
        if not self.automatic_optimization:
            stop_reducer_sync(self.trainer)

    def finite_step(
        self,
        losses: Mapping[str, torch.Tensor],
        parameters: Mapping[str, Iterable[nn.Parameter]],
    ) -> bool:
        """True when the loss terms and the gradients of the named parameter groups are finite
        on every process; otherwise stop or skip as `nonfinite` says (call after the last
        backward; manual optimisation's gradients are averaged over processes first)."""
        groups = {name: list(group) for name, group in parameters.items()}
        if not self.automatic_optimization:
            average_gradients([p for group in groups.values() for p in group], self.trainer)
        values = [loss.detach().float().reshape(()) for loss in losses.values()]
        # An fp16 GradScaler expects inf gradients while it searches for its loss scale, and
        # skips those steps itself (lowering the scale): under one, only losses are checked.
        scaled = getattr(self.trainer.precision_plugin, "scaler", None) is not None
        checked = {} if scaled else groups
        for group in checked.values():
            grads = [p.grad for p in group if p.grad is not None]
            # The 2-norm (one fused reduction per device and dtype) is NaN or inf when any
            # element is; so is it when a finite element's square overflows, which no healthy
            # step has. The max-norm would not overflow, but CUDA's fused max drops NaNs. A
            # group without gradients gives a zero on the CPU, hence the move.
            values.append(torch.nn.utils.get_total_norm(grads).to(self.device))
        # Every process must take the same decision, or those that step would wait forever in
        # the next collective for those that stopped. Summing keeps a non-finite entry
        # non-finite (nan + x, inf + x), so one all-reduce and one read to the host serve all.
        totals = self.trainer.strategy.reduce(torch.stack(values), reduce_op="sum").tolist()
        count = len(losses)
        bad = _non_finite([f"train/loss_{name}" for name in losses], totals[:count])
        # A non-finite loss makes gradients non-finite too: name them only when they alone are.
        bad = bad or _non_finite([f"gradient norm of {name}" for name in checked], totals[count:])
        if bad:
            message = f"{', '.join(bad)} at iteration {int(self.iteration)}"
            if self.nonfinite == "stop":
                raise FloatingPointError(
                    f"non-finite training step: {message}. Set model.nonfinite=skip to skip "
                    "such steps instead of stopping."
                )
            for group in groups.values():
                for parameter in group:
                    parameter.grad = None
            self.skipped_steps += 1
            if self.trainer.is_global_zero:
                log.warning("skipped the optimizer step: %s", message)
        if self.nonfinite == "skip":
            # The same count on every process (the decision is shared): no sync needed.
            self.log(
                "train/skipped_steps", float(self.skipped_steps), on_step=True, on_epoch=False
            )
        return not bad
