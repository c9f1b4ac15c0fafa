"""The inference graphs an export holds, each a module with named tensor inputs and outputs.

Every graph runs the networks the model inverts with (`inversion_networks`: the generator and
encoder of one set, as `evaluate.py` reconstructs), in eval mode, with the generator's stored
noise maps (StyleGAN2), so that an exported file is a deterministic function of its inputs.
Images are (N, C, H, W) in [-1, 1]; codes are w (N, w_dim) or W+ (N, n_latent, w_dim), as the
model's encoder produces them; prior samples are z (N, z_dim).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from invgan.inversion.protocols import InvertibleModel
from invgan.nn.frozen_generator import FrozenGenerator


@dataclass(frozen=True)
class InferenceGraph:
    """One exported function: the module, an example input, and the tensor names."""

    name: str
    module: nn.Module
    example: torch.Tensor
    input_name: str
    output_name: str


class _Encode(nn.Module):
    def __init__(self, model: InvertibleModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode(images)


class _Decode(nn.Module):
    def __init__(self, model: InvertibleModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(codes)


class _Reconstruct(nn.Module):
    def __init__(self, model: InvertibleModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.decode(self.model.encode(images))


class _Map(nn.Module):
    def __init__(self, generator: FrozenGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator.map(z)


# Batch of the example inputs; the exported graphs take any batch size.
EXAMPLE_BATCH = 2


def inference_graphs(model: InvertibleModel) -> list[InferenceGraph]:
    """The encoder, generator, reconstruction and mapping graphs of `model`, with examples."""
    generator = model.frozen_generator()
    side, channels = generator.resolution, generator.channels
    parameter = next(generator.parameters())
    images = torch.zeros(EXAMPLE_BATCH, channels, side, side, device=parameter.device)
    with torch.no_grad():
        codes = model.encode(images)
    z = torch.zeros(EXAMPLE_BATCH, generator.z_dim, device=parameter.device)
    return [
        InferenceGraph("encoder", _Encode(model), images, "images", "codes"),
        InferenceGraph("generator", _Decode(model), codes, "codes", "images"),
        InferenceGraph("reconstruction", _Reconstruct(model), images, "images", "reconstructions"),
        InferenceGraph("mapping", _Map(generator), z, "z", "codes"),
    ]


def export_manifest(model: InvertibleModel, graphs: list[InferenceGraph]) -> dict[str, Any]:
    """What a user of the exported files needs to feed them: shapes, names and value range."""
    generator = model.frozen_generator()
    return {
        "resolution": generator.resolution,
        "channels": generator.channels,
        "z_dim": generator.z_dim,
        "image_range": [-1.0, 1.0],
        "graphs": {
            graph.name: {
                "input": graph.input_name,
                "input_shape": ["batch", *graph.example.shape[1:]],
                "output": graph.output_name,
            }
            for graph in graphs
        },
    }
