"""`callbacks.capture`: training iterations recorded once as CUDA graphs and replayed."""

from __future__ import annotations

import logging

import pytorch_lightning as pl

from invgan.callbacks.leave_trainer import leave_trainer
from invgan.modules.captured_iteration import CapturedIteration, CaptureError

log = logging.getLogger(__name__)


class CaptureIterations(pl.Callback):
    """Record each training iteration of the recipe as a CUDA graph after `warmup` eager ones
    (`invgan.modules.captured_iteration`). For small models, whose iterations are bound by
    kernel launches; on a CPU the iterations run eagerly, unchanged.

    Recipes that can be captured offer `enable_capture` (the InvGAN recipes); it refuses runs
    whose iterations cannot be recorded, saying why. `enabled`: true (refused runs stop with
    that reason; on a CPU the capturable iteration runs eagerly), false, or auto (captured on a
    GPU when the run allows it, else eager, with the reason logged).
    """

    def __init__(self, enabled: bool | str = False, warmup: int = 3) -> None:
        if enabled not in (True, False, "auto"):
            raise ValueError(f"callbacks.capture.enabled={enabled!r}; allowed: true, false, auto")
        self.enabled = enabled
        self.warmup = warmup

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Off (or auto without a GPU): leave the trainer (a callback costs every batch)."""
        gpu = trainer.strategy.root_device.type == "cuda"
        if not self.enabled or (self.enabled == "auto" and not gpu):
            leave_trainer(self, trainer)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Hand the recipe its capture (after checkpoint restore, before the first batch)."""
        try:
            enable = getattr(pl_module, "enable_capture", None)
            if enable is None:
                raise CaptureError(
                    f"callbacks.capture.enabled={self.enabled}: {type(pl_module).__name__} "
                    "iterations cannot be captured as CUDA graphs (only the InvGAN recipes "
                    "can); set it to false"
                )
            enable(CapturedIteration(self.warmup))
        except CaptureError as refused:
            if self.enabled != "auto":
                raise
            log.info("training iterations run eagerly: %s", refused)
