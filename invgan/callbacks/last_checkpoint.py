"""`last.ckpt`: the latest training state, for resuming and for evaluating where a run ended.

Lightning's `ModelCheckpoint(save_last=True)` refreshes `last.ckpt` only when it also saves a
top-k checkpoint, so after a validation that did not improve the monitored metric, or a stop
by `max_time` / `max_steps` mid-epoch, its `last.ckpt` is an older state. This callback writes
it after every validation, when fitting ends, and when SIGTERM or Ctrl+C interrupts fitting,
through a temporary file and a rename, so an interruption while writing leaves the previous
`last.ckpt` intact. A state with a non-finite parameter or buffer is never written: the
previous `last.ckpt` stays the one to resume from.

Checkpoint callbacks run after all others and, with one validation per epoch, record a new
best model only when the epoch ends, after `last.ckpt` was written at the validation: the file
would keep the previous best path, a file that top-k saving may since have deleted. So when a
checkpoint callback's best path has changed since `last.ckpt` was written, their state in the
file is brought up to date (at the next batch or epoch, or when fitting ends); the training
state in it stays that of the validation.

A stop by `max_steps` or `max_time` in the middle of an epoch is saved at the end of the last
training batch, not when fitting ends: by then Lightning has counted the epoch as finished, and
a run resumed from that state would start the next epoch instead of finishing this one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Timer
from pytorch_lightning.utilities.exceptions import SIGTERMException

from invgan.checkpoints.atomic import atomic_write
from invgan.checkpoints.safe_load import safe_torch_load

log = logging.getLogger(__name__)


def state_is_finite(state: Mapping[str, torch.Tensor]) -> bool:
    """True when every floating-point tensor of a state dict is finite."""
    tensors = [t for t in state.values() if isinstance(t, torch.Tensor) and t.is_floating_point()]
    flags = [t.isfinite().all() for t in tensors]
    return bool(torch.stack(flags).all()) if flags else True


class LastCheckpoint(pl.Callback):
    """Keeps `<dirpath>/<filename>` the state of the latest validation, of the end of fit, or of
    an interruption by SIGTERM or Ctrl+C, unless that state holds NaN or inf."""

    def __init__(self, dirpath: str | os.PathLike, filename: str = "last.ckpt") -> None:
        self.path = Path(dirpath) / filename
        self._saved_at_step: int | None = None
        # The checkpoint callbacks' best paths that the file on disk holds.
        self._written_best: list[str | None] = []

    def save(self, trainer: pl.Trainer) -> None:
        """Write the checkpoint atomically (every rank calls this; rank zero writes)."""
        # Ranks may differ (buffers such as batch-norm statistics are not synchronised), and
        # saving is collective: all ranks must agree to save or all to skip.
        finite = trainer.strategy.reduce_boolean_decision(
            state_is_finite(trainer.lightning_module.state_dict())
        )
        if not finite:
            log.error(
                "not writing %s: the model holds NaN or inf parameters or buffers; the previous "
                "%s was kept",
                self.path,
                self.path.name,
            )
            return
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        # The whole training state (optimizers, loops, callbacks): resume is exact.
        trainer.save_checkpoint(temporary, weights_only=False)
        if trainer.is_global_zero:
            os.replace(temporary, self.path)
        self._saved_at_step = trainer.global_step
        self._written_best = _best_paths(trainer)

    def refresh_best(self, trainer: pl.Trainer) -> None:
        """Write the checkpoint callbacks' current state into the file this callback wrote,
        when their best path has changed since (rank zero writes; nothing collective)."""
        best = _best_paths(trainer)
        if self._saved_at_step is None or best == self._written_best:
            return
        if trainer.is_global_zero and self.path.is_file():
            checkpoint = safe_torch_load(self.path)
            states = checkpoint.setdefault("callbacks", {})
            for callback in trainer.checkpoint_callbacks:
                states[callback.state_key] = callback.state_dict()
            atomic_write(self.path, lambda file: torch.save(checkpoint, file))
        self._written_best = best

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """After a validation within the epoch (see the module docstring)."""
        self.refresh_best(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """After the previous epoch's end, where checkpoint callbacks save a new best."""
        self.refresh_best(trainer)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Save when fitting stops after this batch (see the module docstring)."""
        if _stops_after_this_batch(trainer):
            self.save(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """After each validation during fit (not the sanity check)."""
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """When fitting ends, unless its last batch or validation was just saved."""
        if self._saved_at_step != trainer.global_step:
            self.save(trainer)
        else:
            self.refresh_best(trainer)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """When SIGTERM or Ctrl+C interrupts fitting; errors leave the previous state."""
        if trainer.state.fn != "fit":
            return  # testing runs on other (e.g. the best) weights than the latest
        # Lightning turns SIGTERM into SIGTERMException at the end of a training batch, which
        # it agrees on across ranks, so every rank arrives here and the collective save is safe.
        if isinstance(exception, SIGTERMException):
            self.save(trainer)
        # Ctrl+C raises KeyboardInterrupt wherever each process happens to be: possibly within
        # an optimizer step (a state that is finite and loadable, though mid-iteration). With
        # several processes some may be blocked in a collective, and the save's barrier would
        # hang; there the latest validation's last.ckpt stays.
        elif isinstance(exception, KeyboardInterrupt):
            if trainer.world_size == 1:
                self.save(trainer)
            else:
                log.warning("interrupted: %s was not updated (several processes)", self.path)


def _best_paths(trainer: pl.Trainer) -> list[str | None]:
    """The best-model path of each checkpoint callback (None for those that keep none)."""
    return [
        getattr(callback, "best_model_path", None) for callback in trainer.checkpoint_callbacks
    ]


def _stops_after_this_batch(trainer: pl.Trainer) -> bool:
    """Whether fitting ends after the current training batch: `max_steps` reached, a stop
    already requested, or `max_time` used up (rank zero's clock decides, as Lightning's Timer
    does, so that every rank takes the collective save together)."""
    if trainer.should_stop or 0 <= trainer.max_steps <= trainer.global_step:
        return True
    # Lightning's callback connector sets `callbacks`; Trainer does not declare it.
    callbacks = trainer.callbacks  # type: ignore[attr-defined]
    timer = next((c for c in callbacks if isinstance(c, Timer)), None)
    remaining = None if timer is None else timer.time_remaining()
    if remaining is None:
        return False
    return bool(trainer.strategy.broadcast(remaining <= 0))
