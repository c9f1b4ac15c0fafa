"""Store the run's composed config inside every checkpoint."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from invgan.checkpoints.keys import CONFIG_KEY


class RunConfigInCheckpoint(pl.Callback):
    """Writes the composed config (YAML text, unresolved) into each checkpoint.

    Unresolved, so that `${paths.data_dir}` and similar references re-resolve on the machine
    that evaluates the checkpoint. Plain text keeps the checkpoint loadable with
    `torch.load(weights_only=True)`.
    """

    def __init__(self, config_yaml: str) -> None:
        self.config_yaml = config_yaml

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Attach the config text to the checkpoint dict."""
        checkpoint[CONFIG_KEY] = self.config_yaml
