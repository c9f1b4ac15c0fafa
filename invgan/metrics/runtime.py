"""Wall-clock cost of a batched function (encoder, inversion) per image."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA kernels run asynchronously) before timing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_seconds_per_item(
    fn: Callable[[Tensor], Any], batch: Tensor, warmup: int = 3, repeats: int = 10
) -> dict:
    """Median seconds per image of `fn(batch)` under inference mode, with the run's settings."""
    if batch.ndim == 0 or batch.shape[0] == 0:
        raise ValueError("batch must hold at least one item along its first dimension")
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got {warmup} and {repeats}")
    batch_seconds = []
    with torch.inference_mode():
        for _ in range(warmup):
            fn(batch)
        synchronize(batch.device)
        for _ in range(repeats):
            start = time.perf_counter()
            fn(batch)
            # CUDA kernels run asynchronously; wait for them before reading the clock
            synchronize(batch.device)
            batch_seconds.append(time.perf_counter() - start)
    median = statistics.median(batch_seconds)
    return {
        "seconds_per_image": median / batch.shape[0],
        "median_batch_seconds": median,
        "batch_size": int(batch.shape[0]),
        "device": str(batch.device),
        "dtype": str(batch.dtype),
        "torch_version": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "warmup": warmup,
        "repeats": repeats,
    }
