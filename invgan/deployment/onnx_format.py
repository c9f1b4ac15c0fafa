"""ONNX files of the inference graphs, with a dynamic batch dimension."""

from __future__ import annotations

from pathlib import Path

import torch

from invgan.deployment.inference_graphs import InferenceGraph

# Opset of torch's exporter, kept explicit so that files do not change with the torch version.
OPSET = 18
# Largest batch the dynamic dimension admits (ONNX itself imposes no bound).
MAX_BATCH = 4096


def export_onnx(graph: InferenceGraph, path: Path) -> Path:
    """Write `graph` as an ONNX file at `path` (any batch size), without external data."""
    try:
        import onnxscript  # noqa: F401  torch's ONNX exporter needs it
    except ImportError as error:
        raise ImportError(
            "format=onnx needs the onnx and onnxscript packages: pip install 'invgan[export]'"
        ) from error
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        program = torch.onnx.export(
            graph.module.eval(),
            (graph.example,),
            input_names=[graph.input_name],
            output_names=[graph.output_name],
            dynamic_shapes={graph.input_name: {0: batch}},
            opset_version=OPSET,
            dynamo=True,
            optimize=True,
            verbose=False,
        )
    if program is None:  # only the legacy exporter (dynamo=False) returns nothing
        raise RuntimeError(
            f"torch {torch.__version__}'s ONNX exporter returned no program for {graph.name}: "
            "export with format=torchscript or safetensors instead"
        )
    program.save(str(path), external_data=False)
    return path
