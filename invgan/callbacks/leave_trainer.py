"""Callbacks with nothing to do take themselves out of the trainer."""

from __future__ import annotations

import pytorch_lightning as pl


def leave_trainer(callback: pl.Callback, trainer: pl.Trainer) -> None:
    """Remove `callback` from `trainer.callbacks` (call from its `setup`).

    Lightning calls every hook of every callback, whether the callback defines it or not: about
    ten per training batch in the GAN recipes (around each backward pass and optimizer step),
    about 17 us per callback and batch on the 2-core development machine. A callback configured
    to do nothing (a speed option left off) would cost that on every batch; leaving the list at
    setup makes it free. The list is replaced, not changed in place: Lightning is iterating over
    it.
    """
    # Lightning's callback connector sets `callbacks`; Trainer does not declare it.
    trainer.callbacks = [c for c in trainer.callbacks if c is not callback]  # type: ignore[attr-defined]
