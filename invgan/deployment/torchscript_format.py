"""TorchScript files of the inference graphs, loadable with `torch.jit.load` (no Python)."""

from __future__ import annotations

from pathlib import Path

import torch

# Lightning's own switch for tracing a LightningModule outside a Trainer (its `trainer`
# property raises otherwise); `LightningModule.to_torchscript` traces under it too.
from pytorch_lightning.core.module import _jit_is_scripting

from invgan.deployment.inference_graphs import InferenceGraph


def export_torchscript(graph: InferenceGraph, path: Path) -> Path:
    """Trace `graph` and save it at `path`; the traced graph takes any batch size."""
    with torch.no_grad(), _jit_is_scripting():
        traced = torch.jit.trace(graph.module.eval(), (graph.example,), check_trace=False)
    traced.save(str(path))
    return path
