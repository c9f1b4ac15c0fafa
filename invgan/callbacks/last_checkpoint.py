"""`last.ckpt`: the latest training state, for resuming and for evaluating where a run ended.

Lightning's `ModelCheckpoint(save_last=True)` refreshes `last.ckpt` only when it also saves a
top-k checkpoint, so after a validation that did not improve the monitored metric, or a stop
by `max_time` / `max_steps` mid-epoch, its `last.ckpt` is an older state. This callback writes
it after every validation, when fitting ends, and when SIGTERM or Ctrl+C interrupts fitting,
through a temporary file and a rename, so an interruption while writing leaves the previous
`last.ckpt` intact. A state with a non-finite parameter or buffer is never written: the
previous `last.ckpt` stays the one to resume from.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException

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
        trainer.save_checkpoint(temporary)
        if trainer.is_global_zero:
            os.replace(temporary, self.path)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """After each validation during fit (not the sanity check)."""
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """When fitting ends, whatever stopped it."""
        self.save(trainer)

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
