"""A callback for DDP tests: each rank saves its final weights and a draw from its generator."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch


class RankStateDump(pl.Callback):
    """Writes `<run>/rank_<r>.pt`: the rank's state dict and four numbers from torch's
    generator (ranks must draw different prior latents)."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Dump this rank's state at the end of fit."""
        path = Path(trainer.default_root_dir) / f"rank_{trainer.global_rank}.pt"
        torch.save({"state_dict": pl_module.state_dict(), "draw": torch.randn(4)}, path)
