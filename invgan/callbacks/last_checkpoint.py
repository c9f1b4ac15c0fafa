"""`last.ckpt`: the latest training state, for resuming and for evaluating where a run ended.

Lightning's `ModelCheckpoint(save_last=True)` refreshes `last.ckpt` only when it also saves a
top-k checkpoint, so after a validation that did not improve the monitored metric, or a stop
by `max_time` / `max_steps` mid-epoch, its `last.ckpt` is an older state. This callback writes
it after every validation and when fitting ends, through a temporary file and a rename, so an
interruption while writing leaves the previous `last.ckpt` intact.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytorch_lightning as pl


class LastCheckpoint(pl.Callback):
    """Keeps `<dirpath>/<filename>` the state of the latest validation or of the end of fit."""

    def __init__(self, dirpath: str | os.PathLike, filename: str = "last.ckpt") -> None:
        self.path = Path(dirpath) / filename

    def save(self, trainer: pl.Trainer) -> None:
        """Write the checkpoint atomically (every rank calls this; rank zero writes)."""
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
