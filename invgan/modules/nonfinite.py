"""What a training recipe does with a step whose loss or gradient is not finite
(`model.nonfinite`): stop the run with an error naming the terms, or skip the step.

The check runs on the device, with no read to the host in the iteration, so that a GPU never
waits for the host between iterations:

1. After the last backward of an iteration, `vet_iteration` puts every loss term and each
   parameter group's gradient norm in one vector (summed over DDP processes: a NaN or inf on
   one process makes the sum non-finite on all of them, so all decide alike) and derives a
   0-dim flag `step_ok` on the device.
2. The optimizers are told to skip on that flag without a host read: fused PyTorch optimizers
   (`fused=True`, as the recipes configure Adam) take a `found_inf` tensor, the same one
   `GradScaler` uses, and leave parameters, moments and step counts untouched when it is set.
   Buffers that training-mode forward passes change (batch-norm statistics, spectral-norm
   vectors) are put back from a copy taken at the start of the iteration (`BufferSnapshot`),
   and the EMA networks move by a weight multiplied by the flag. A skipped iteration still
   counts: `iteration` and Lightning's step counter advance, so step limits hold.
3. The host reads the outcome only at logging steps (and before a checkpoint is saved, and
   when fitting ends): the first bad iteration since the last read, its terms and values, and
   the number of skipped iterations, kept on the device. With `stop` it raises
   `FloatingPointError` naming them; every iteration after the first bad one is skipped until
   then (the flag is sticky), so the state raised from is that of the last good iteration.
   With `skip` it warns and logs `train/skipped_steps`.

Optimizers that take no `found_inf` (unfused ones, or any under an fp16 `GradScaler`, which
sets `found_inf` itself) get the previous, synchronous check: one read to the host per
iteration, a stop raised at once, a skip by dropping the gradients. Under a `GradScaler` only
losses are checked: it expects inf gradients while it searches for its loss scale and skips
those steps itself.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.core.optimizer import LightningOptimizer
from pytorch_lightning.plugins.precision import MixedPrecision, Precision
from torch import nn

from invgan.modules.buffer_snapshot import BufferSnapshot
from invgan.modules.gradient_sync import average_gradients, stop_reducer_sync
from invgan.utils.log_steps import logs_this_step

log = logging.getLogger(__name__)

NONFINITE_POLICIES = ("stop", "skip")
# Room for the values of one iteration's check (loss terms plus parameter groups).
MAX_CHECKED_VALUES = 32


def _non_finite(names: Sequence[str], values: Sequence[float]) -> list[str]:
    """'name = value' for each value that is NaN or infinite."""
    return [f"{n} = {v}" for n, v in zip(names, values, strict=True) if not math.isfinite(v)]


def _describe(loss_names: Sequence[str], group_names: Sequence[str], values: list[float]) -> str:
    """The non-finite terms; gradients are named only when no loss term explains them (a
    non-finite loss makes gradients non-finite too)."""
    count = len(loss_names)
    bad = _non_finite([f"train/loss_{name}" for name in loss_names], values[:count])
    bad = bad or _non_finite(
        [f"gradient norm of {name}" for name in group_names],
        values[count : count + len(group_names)],
    )
    return ", ".join(bad)


def _takes_found_inf(optimizer: Any) -> bool:
    """Whether the optimizer skips its step on a `found_inf` tensor (fused implementations)."""
    inner = getattr(optimizer, "optimizer", optimizer)  # Lightning wraps optimizers
    return bool(getattr(inner, "_step_supports_amp_scaling", False)) and bool(
        inner.defaults.get("fused")
    )


class NonFiniteGuardModule(pl.LightningModule):
    """Base of the training recipes: an `iteration` counter and `vet_iteration`, which vets one
    iteration before its optimizer steps (see the module docstring).

    Subclasses list the networks they train in `trained_networks` (their buffers are restored
    after a bad iteration), call `vet_iteration` after the iteration's last backward and
    `count_iteration` when it ends.

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

    iteration: torch.Tensor  # a registered buffer (set in `__init__`)

    def __init__(self, nonfinite: str = "stop") -> None:
        super().__init__()
        if nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"model.nonfinite={nonfinite!r}; allowed: {NONFINITE_POLICIES}")
        self.nonfinite = nonfinite
        self.accumulate_grad_batches = 1
        # Counts training iterations; saved with checkpoints so that lazy regularisation and
        # EMA ramps keep their schedule on resume. Lightning's global_step counts optimizer
        # steps instead (two per iteration in the two-optimizer recipes).
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))
        # The host's copy of `iteration`, so that schedules decided on the host need no read of
        # the device; refreshed from the buffer when a state dict is loaded.
        self._host_iteration: int | None = None
        self.register_load_state_dict_post_hook(_forget_host_iteration)
        self._snapshot: BufferSnapshot | None = None
        self._record: dict[str, torch.Tensor] = {}
        # The distinct (loss terms, parameter groups) name lists seen; the device record keeps
        # the index of the bad iteration's list (a constant within a captured graph).
        self._name_lists: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        self._host_skipped = 0  # iterations skipped by the synchronous check

    # ---------------------------------------------------------------- iteration counter
    @property
    def host_iteration(self) -> int:
        """The iteration counter, read from the device once and then counted on the host."""
        if self._host_iteration is None:
            self._host_iteration = int(self.iteration)
        return self._host_iteration

    def count_iteration(self) -> None:
        """Advance `iteration` (on the device, and the host's copy)."""
        self._host_iteration = self.host_iteration + 1
        self.iteration += 1

    def trained_networks(self) -> list[nn.Module]:
        """The networks this recipe trains (their buffers are guarded)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- accumulation
    @property
    def micro_batches(self) -> int:
        """Training batches per iteration (1 without gradient accumulation)."""
        if self.automatic_optimization:
            return int(self.trainer.accumulate_grad_batches)
        return self.accumulate_grad_batches

    def starts_iteration(self, batch_idx: int) -> bool:
        """Whether batch `batch_idx` of the epoch is the first of an iteration."""
        return batch_idx % self.micro_batches == 0

    def iteration_optimizers(self, batch_idx: int) -> list[LightningOptimizer]:
        """The configured optimizers, their gradients cleared when batch `batch_idx` starts an
        iteration (they accumulate over the iteration's batches)."""
        configured = self.optimizers()
        optimizers = configured if isinstance(configured, list) else [configured]
        if self.starts_iteration(batch_idx):
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
        return optimizers

    def ends_iteration(self, batch_idx: int) -> bool:
        """Whether batch `batch_idx` of the epoch completes an iteration (its last batch, or the
        epoch's last)."""
        last_of_epoch = batch_idx + 1 == self.trainer.num_training_batches
        return (batch_idx + 1) % self.micro_batches == 0 or last_of_epoch

    def logs_this_step(self, batch_idx: int) -> bool:
        """Whether this training batch's values are logged (`invgan.utils.log_steps`)."""
        return logs_this_step(self.trainer, batch_idx)

    def _plain_steps(self) -> bool:
        """Whether backward passes and optimizer steps can bypass Lightning's wrappers: one
        process, and a precision plugin that only autocasts (no loss scaler). The wrappers
        then add nothing but callback hooks (`on_before_backward`, `on_after_backward`,
        `on_before_optimizer_step`, which these recipes do not get) at about 0.1 ms each: a
        tenth of a small model's iteration on a GPU."""
        trainer = self.trainer
        plugin = type(trainer.precision_plugin)
        return (
            trainer.world_size == 1
            and plugin in (Precision, MixedPrecision)
            and getattr(trainer.precision_plugin, "scaler", None) is None
        )

    def manual_backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        """Backward of `loss` divided by the micro-batches of an iteration, so that accumulated
        gradients are those of the mean loss over the iteration's batches."""
        if self.accumulate_grad_batches > 1:
            loss = loss / self.accumulate_grad_batches
        if self._plain_steps():
            loss.backward(*args, **kwargs)
        else:
            super().manual_backward(loss, *args, **kwargs)

    def step_optimizers(self, optimizers: Sequence[Any]) -> None:
        """`step()` each of Lightning's optimizer wrappers, directly on the wrapped optimizer
        where `_plain_steps` allows; Lightning's step counters advance either way."""
        for optimizer in optimizers:
            if self._plain_steps():
                optimizer._on_before_step()
                optimizer.optimizer.step()
                optimizer._on_after_step()
            else:
                optimizer.step()

    def log_training_values(
        self,
        values: Mapping[str, torch.Tensor],
        batch_size: int,
        progress_bar: Mapping[str, str] | None = None,
    ) -> None:
        """Log a logging step's values, read to the host in one transfer (call on logging steps
        only). Lightning reads progress-bar values after every later batch: device tensors
        there would stall each iteration, host ones cost nothing. `progress_bar` maps short
        names to shown on the bar to keys of `values`."""
        host = torch.stack([v.detach().float().reshape(()) for v in values.values()]).cpu()
        logs = dict(zip(values, host, strict=True))
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=batch_size)
        if progress_bar:
            shown = {short: logs[key] for short, key in progress_bar.items()}
            self.log_dict(
                shown,
                prog_bar=True,
                logger=False,
                on_step=True,
                on_epoch=False,
                batch_size=batch_size,
            )

    # ---------------------------------------------------------------- Lightning hooks
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Keep DDP's reducer out of manually optimised steps (`vet_iteration` averages), and
        copy the guarded buffers at the start of an iteration."""
        if not self.automatic_optimization:
            stop_reducer_sync(self.trainer)
        if self.starts_iteration(batch_idx):
            self.snapshot_buffers()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Read the device's verdicts on logging steps."""
        if self.logs_this_step(batch_idx):
            self.report_nonfinite(log_count=True)

    def on_train_end(self) -> None:
        """Read the verdicts of the iterations since the last logging step."""
        self.report_nonfinite()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Never save after an unreported bad iteration under `stop`: raise first."""
        self.report_nonfinite()

    # ---------------------------------------------------------------- the check
    def snapshot_buffers(self) -> None:
        """Copy the trained networks' buffers (restored if the iteration turns out bad)."""
        if self._snapshot is None:
            self._snapshot = BufferSnapshot(
                [b for network in self.trained_networks() for b in network.buffers()]
            )
        self._snapshot.take()

    def vet_iteration(
        self,
        losses: Mapping[str, torch.Tensor],
        parameters: Mapping[str, Iterable[nn.Parameter]],
        optimizers: Sequence[Any],
    ) -> torch.Tensor:
        """Check the iteration's loss terms and gradients (call after the last backward) and arm
        `optimizers` to skip their coming `step()` if any is not finite on any process.

        Returns the 0-dim float flag `step_ok` (1 or 0) on the device. Manual optimisation's
        gradients are averaged over processes first.
        """
        groups = {name: list(group) for name, group in parameters.items()}
        if not self.automatic_optimization:
            average_gradients([p for group in groups.values() for p in group], self.trainer)
        scaled = getattr(self.trainer.precision_plugin, "scaler", None) is not None
        checked = {} if scaled else groups
        values = [loss.detach().float().reshape(()) for loss in losses.values()]
        for group in checked.values():
            grads = [p.grad for p in group if p.grad is not None]
            # The 2-norm (one fused reduction per device and dtype) is NaN or inf when any
            # element is; so is it when a finite element's square overflows, which no healthy
            # step has. The max-norm would not overflow, but CUDA's fused max drops NaNs. A
            # group without gradients gives a zero on the CPU, hence the move.
            values.append(torch.nn.utils.get_total_norm(grads).to(self.device))
        totals = self.trainer.strategy.reduce(torch.stack(values), reduce_op="sum")
        names = (tuple(losses), tuple(checked))
        if scaled or not all(_takes_found_inf(opt) for opt in optimizers):
            return self._vet_on_host(totals, names, groups)
        step_ok = self._record_on_device(totals, names)
        if self._snapshot is not None:
            self._snapshot.restore_where(step_ok == 0)
        found_inf = 1.0 - step_ok
        for optimizer in optimizers:
            getattr(optimizer, "optimizer", optimizer).found_inf = found_inf
        return step_ok

    def _record_on_device(
        self, totals: torch.Tensor, names: tuple[tuple[str, ...], tuple[str, ...]]
    ) -> torch.Tensor:
        """Keep the first bad iteration since the last report (its values and number) and the
        skip count on the device; the step flag, sticky under `stop`."""
        if len(totals) > MAX_CHECKED_VALUES:
            raise ValueError(f"at most {MAX_CHECKED_VALUES} checked values, got {len(totals)}")
        record = self._record
        if not record:
            record["first_bad"] = torch.full((), -1, dtype=torch.long, device=totals.device)
            record["values"] = torch.zeros(MAX_CHECKED_VALUES, device=totals.device)
            record["skipped"] = torch.zeros((), device=totals.device)
            record["any_bad"] = torch.zeros((), dtype=torch.bool, device=totals.device)
            record["names"] = torch.zeros((), dtype=torch.long, device=totals.device)
        if names not in self._name_lists:
            self._name_lists.append(names)
        finite = torch.isfinite(totals).all()
        first = finite.logical_not() & (record["first_bad"] < 0)
        record["first_bad"].copy_(torch.where(first, self.iteration, record["first_bad"]))
        record["names"].masked_fill_(first, self._name_lists.index(names))
        padded = torch.nn.functional.pad(totals, (0, MAX_CHECKED_VALUES - len(totals)))
        record["values"].copy_(torch.where(first, padded, record["values"]))
        record["any_bad"].logical_or_(finite.logical_not())
        step_ok = (record["any_bad"] if self.nonfinite == "stop" else ~finite).logical_not()
        record["skipped"].add_(1.0 - step_ok.float())
        return step_ok.float()

    def report_nonfinite(self, log_count: bool = False) -> None:
        """Read the device's record (a host read: call on logging steps only): raise under
        `stop`, warn under `skip`; with `log_count`, log `train/skipped_steps` under `skip`."""
        record = self._record
        if not record:
            return
        first_bad = int(record["first_bad"])
        if first_bad >= 0:
            names = self._name_lists[int(record["names"])]
            terms = _describe(*names, record["values"].tolist())
            message = f"{terms} at iteration {first_bad}"
            if self.nonfinite == "stop":
                raise FloatingPointError(
                    f"non-finite training step: {message}. Set model.nonfinite=skip to skip "
                    "such steps instead of stopping."
                )
            if self.trainer.is_global_zero:
                log.warning("skipped the optimizer step: %s", message)
            record["first_bad"].fill_(-1)
        if log_count and self.nonfinite == "skip":
            # The same count on every process (the decision is shared): no sync needed.
            skipped = record["skipped"].cpu()
            self.log("train/skipped_steps", skipped, on_step=True, on_epoch=False)

    @property
    def skipped_steps(self) -> int:
        """Iterations skipped so far by this process (a host read)."""
        return int(self._record["skipped"]) if self._record else self._host_skipped

    def _vet_on_host(
        self,
        totals: torch.Tensor,
        names: tuple[tuple[str, ...], tuple[str, ...]],
        groups: Mapping[str, list[nn.Parameter]],
    ) -> torch.Tensor:
        """The synchronous check, for optimizers that cannot skip on a device flag."""
        description = _describe(*names, totals.tolist())
        if description:
            message = f"{description} at iteration {self.host_iteration}"
            if self.nonfinite == "stop":
                raise FloatingPointError(
                    f"non-finite training step: {message}. Set model.nonfinite=skip to skip "
                    "such steps instead of stopping."
                )
            for group in groups.values():
                for parameter in group:
                    parameter.grad = None
            if self._snapshot is not None:
                self._snapshot.restore_where(torch.ones((), dtype=torch.bool, device=self.device))
            self._host_skipped += 1
            if self.trainer.is_global_zero:
                log.warning("skipped the optimizer step: %s", message)
        if self.nonfinite == "skip":
            self.log(
                "train/skipped_steps", float(self._host_skipped), on_step=True, on_epoch=False
            )
        return torch.tensor(0.0 if description else 1.0, device=self.device)


def _forget_host_iteration(module: NonFiniteGuardModule, incompatible_keys: Any) -> None:
    """After a state dict is loaded, the host's copy of `iteration` is read again."""
    module._host_iteration = None
