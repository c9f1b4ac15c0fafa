"""The training progress bar, redrawn on a clock instead of after every batch."""

from __future__ import annotations

from time import monotonic
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar

from invgan.callbacks.leave_trainer import leave_trainer


class ProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar, with the training bar redrawn at most every `interval` seconds
    (and at the last batch of an epoch).

    Lightning's default bars redraw after every batch: the Rich bar (the default when `rich` is
    installed) reads and formats every progress-bar metric each time, about 0.15 ms of host
    time, and the TQDM bar costs as much at its default refresh rate of 1. For a small model
    that is a few per cent of an iteration. A fixed refresh rate in batches would suit one model
    size only: a clock keeps about the same number of redraws per second for every recipe.
    """

    def __init__(self, interval: float = 0.5) -> None:
        if interval < 0:
            raise ValueError(f"callbacks.progress_bar.interval must be >= 0, got {interval}")
        super().__init__(refresh_rate=1)
        self.interval = interval
        self._next_redraw = 0.0

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Redraw the training bar when `interval` has passed, or at the epoch's last batch."""
        now = monotonic()
        if now < self._next_redraw and batch_idx + 1 != self.total_train_batches:
            return
        self._next_redraw = now + self.interval
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


class NoProgressBar(pl.Callback):
    """Stands in for the progress bar when `trainer.enable_progress_bar` is false (Lightning
    refuses a progress bar callback then), and leaves the trainer when it sets up."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Leave the trainer: there is nothing to do."""
        leave_trainer(self, trainer)


def progress_bar(enabled: bool = True, interval: float = 0.5) -> pl.Callback:
    """`ProgressBar(interval)` when `enabled` (`trainer.enable_progress_bar`), otherwise a
    `NoProgressBar`."""
    return ProgressBar(interval) if enabled else NoProgressBar()
