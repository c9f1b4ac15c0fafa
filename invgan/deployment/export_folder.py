"""A folder of exported inference graphs, written completely or not at all."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from invgan.deployment.inference_graphs import InferenceGraph, export_manifest, inference_graphs
from invgan.deployment.onnx_format import export_onnx
from invgan.deployment.torchscript_format import export_torchscript
from invgan.inversion.protocols import InvertibleModel

# Writer and file suffix per graph format.
GRAPH_FORMATS: dict[str, tuple[Callable[[InferenceGraph, Path], Path], str]] = {
    "onnx": (export_onnx, ".onnx"),
    "torchscript": (export_torchscript, ".pt"),
}
MANIFEST = "model.json"


def write_graph_folder(
    model: InvertibleModel, folder: str | Path, file_format: str, overwrite: bool = False
) -> list[Path]:
    """Write every inference graph of `model` and a `model.json` manifest into `folder`.

    The files are written into a temporary folder beside it that is renamed into place at the
    end, so an interrupted export leaves no half-written folder; an existing folder is kept
    unless `overwrite`.
    """
    if file_format not in GRAPH_FORMATS:
        raise ValueError(f"format={file_format!r}; choose safetensors, {', '.join(GRAPH_FORMATS)}")
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder} already exists; pass overwrite=true to replace it")
    write, suffix = GRAPH_FORMATS[file_format]
    graphs = inference_graphs(model)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        for graph in graphs:
            write(graph, staging / f"{graph.name}{suffix}")
        manifest = export_manifest(model, graphs)
        manifest["format"] = file_format
        manifest["files"] = {graph.name: f"{graph.name}{suffix}" for graph in graphs}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(folder.iterdir())
