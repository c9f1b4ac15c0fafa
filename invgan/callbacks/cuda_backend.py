"""CUDA backend settings (`cuda.*` in train.yaml) in every training process."""

from __future__ import annotations

import pytorch_lightning as pl

from invgan.utils.cuda_backend import apply_cuda_settings


class CudaBackend(pl.Callback):
    """Apply TF32 and cuDNN benchmark settings when each process sets up: spawned DDP
    processes start with PyTorch's defaults, not the launching process's flags."""

    def __init__(self, tf32: bool, cudnn_benchmark: bool) -> None:
        self.settings = {"tf32": tf32, "cudnn_benchmark": cudnn_benchmark}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Apply the settings in this process."""
        apply_cuda_settings(**self.settings)
