"""NHWC (`channels_last`) memory format for the trained networks' convolutions."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from invgan.callbacks.leave_trainer import leave_trainer


class ChannelsLast(pl.Callback):
    """Store every 4-d weight and buffer of the module in `channels_last` before fitting.

    A convolution with a channels-last weight returns channels-last activations whatever the
    layout of its input, so converting the networks is enough: the first layer converts the
    data. Tensor cores on Volta and later GPUs run NHWC convolutions without transposes
    (mixed precision especially); on CPUs the gain varies. Values are unchanged, and so is the
    state dict, which loads into networks of either layout.
    """

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Convert the module before fitting; when disabled, leave the trainer."""
        if not self.enabled:
            leave_trainer(self, trainer)
        elif stage == "fit":
            pl_module.to(memory_format=torch.channels_last)
