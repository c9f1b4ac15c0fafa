"""`callbacks.capture`: training iterations recorded once as CUDA graphs and replayed."""

from __future__ import annotations

import pytorch_lightning as pl

from invgan.callbacks.leave_trainer import leave_trainer
from invgan.modules.captured_iteration import CapturedIteration, CaptureError


class CaptureIterations(pl.Callback):
    """Record each training iteration of the recipe as a CUDA graph after `warmup` eager ones
    (`invgan.modules.captured_iteration`). For small models, whose iterations are bound by
    kernel launches; on a CPU the iterations run eagerly, unchanged.

    Recipes that can be captured offer `enable_capture` (the InvGAN recipes); it refuses runs
    whose iterations cannot be recorded, saying why.
    """

    def __init__(self, enabled: bool = False, warmup: int = 3) -> None:
        self.enabled = enabled
        self.warmup = warmup

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Off: leave the trainer (a callback costs every batch, `leave_trainer`)."""
        if not self.enabled:
            leave_trainer(self, trainer)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Hand the recipe its capture (after checkpoint restore, before the first batch)."""
        enable = getattr(pl_module, "enable_capture", None)
        if enable is None:
            raise CaptureError(
                f"callbacks.capture.enabled=true: {type(pl_module).__name__} iterations cannot "
                "be captured as CUDA graphs (only the InvGAN recipes can); set it to false"
            )
        enable(CapturedIteration(self.warmup))
