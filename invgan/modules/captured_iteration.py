"""A whole training iteration recorded once as a CUDA graph and replayed after.

A small model's iteration is bound by the host: hundreds of kernel launches, each costing more
host time than the GPU spends running it. Replaying a recorded graph launches them all at
once (PyTorch's "whole-network capture" recipe). What makes an iteration capturable:

- no read of a device value on the host (`NonFiniteGuardModule` decides on the device);
- fixed shapes and fixed tensors: the input is copied into a static tensor, gradients are
  set to None before capture so that the backward pass allocates them inside the graph, and
  the optimizers are fused and `capturable`, with state created before capture;
- nothing decided on the host that changes between iterations unless it keys a graph of its
  own (lazy R1 on or off), or is read from a device tensor updated before each replay (the EMA
  decay). Learning-rate schedules are host values baked into the graph: refused.

Each key (a hashable of host decisions; the input's shape is added to it, so that an epoch's
last, smaller batch gets its own) runs `warmup` times eagerly on a side stream (lazy state,
cuDNN's algorithm search), then is captured and replayed. On a CPU the same step runs
eagerly every time: there are no graphs there, but the step is the same function.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

import torch


class CaptureError(RuntimeError):
    """A training iteration that cannot be recorded as a CUDA graph."""


class CapturedIteration:
    """Runs `step(inputs)` through one CUDA graph per key (see the module docstring)."""

    def __init__(self, warmup: int = 3) -> None:
        if warmup < 1:
            raise ValueError(f"callbacks.capture.warmup must be >= 1, got {warmup}")
        self.warmup = warmup
        self.graphs: dict[Hashable, tuple[torch.cuda.CUDAGraph, torch.Tensor, Any]] = {}
        self.runs: Counter[Hashable] = Counter()

    def run(self, key: Hashable, step: Callable[[torch.Tensor], Any], inputs: torch.Tensor) -> Any:
        """The outputs of `step(inputs)`: replayed, captured, or eager (warm-up, CPU). Replayed
        outputs are the graph's static tensors, overwritten by the next replay."""
        if inputs.device.type != "cuda":
            return step(inputs)
        key = (key, tuple(inputs.shape))
        if key in self.graphs:
            graph, static_inputs, static_outputs = self.graphs[key]
            static_inputs.copy_(inputs)
            graph.replay()
            return static_outputs
        self.runs[key] += 1
        if self.runs[key] <= self.warmup:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                outputs = step(inputs)
            torch.cuda.current_stream().wait_stream(stream)
            return outputs
        static_inputs = inputs.clone()
        graph = torch.cuda.CUDAGraph()
        try:
            # thread_local: loader threads (pinning memory) may use CUDA during the capture.
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                static_outputs = step(static_inputs)
        except RuntimeError as error:
            raise CaptureError(
                f"this training iteration cannot be recorded as a CUDA graph ({error}); "
                "train without callbacks.capture.enabled=true"
            ) from error
        self.graphs[key] = (graph, static_inputs, static_outputs)
        graph.replay()  # capturing records the kernels without running them
        return static_outputs
