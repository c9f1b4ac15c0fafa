"""Log wall-clock training time, so curves can be read against time as well as steps."""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
import torch

from invgan.utils.images import batch_images
from invgan.utils.log_steps import logs_this_step


class TrainingTimeCallback(pl.Callback):
    """Logs `time/train_seconds` (fit wall-clock time, validation excluded) and
    `time/images_per_second` (real training images per second over the last interval)."""

    def __init__(self) -> None:
        self._train_seconds = 0.0
        self._images = 0
        self._last_time: float | None = None

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Start timing this batch."""
        self._last_time = time.perf_counter()

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Accumulate this batch's time and log the running totals."""
        if self._last_time is None:
            return
        elapsed = time.perf_counter() - self._last_time
        self._train_seconds += elapsed
        images = batch_images(batch)
        self._images += images.shape[0]
        if not logs_this_step(trainer, batch_idx):
            return
        batch_size = images.shape[0]
        logged: dict[str, Any] = {"on_step": True, "on_epoch": False, "batch_size": batch_size}
        pl_module.log("time/train_seconds", _host_scalar(self._train_seconds), **logged)
        # On the progress bar beside the main losses; per process under DDP.
        speed = self._images / max(self._train_seconds, 1e-9)
        pl_module.log("time/images_per_second", _host_scalar(speed), prog_bar=True, **logged)

    def state_dict(self) -> dict[str, Any]:
        """Keep the totals across resumes."""
        return {"train_seconds": self._train_seconds, "images": self._images}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the totals from a checkpoint."""
        self._train_seconds = state_dict["train_seconds"]
        self._images = state_dict["images"]


def _host_scalar(value: float) -> torch.Tensor:
    """`value` as a CPU tensor, of the dtype Lightning gives logged numbers. Lightning would put
    a number on the module's device, and it reads each progress-bar value back to the host
    after every later batch (not only on logging steps): on a GPU each read waits for the
    device to finish the work queued so far."""
    return torch.tensor(value, dtype=torch.float32)
