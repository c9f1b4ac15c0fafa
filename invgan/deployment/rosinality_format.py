"""A StyleGAN2 generator written as a rosinality `.pt` (`g_ema`, `latent_avg`), the layout
that pSp, e4e, ReStyle, PTI and most StyleGAN2 tools load.

Our StyleGAN2's state-dict names are rosinality's, so the file holds the generator's state
dict as it is (tensors only: it loads with `torch.load(weights_only=True)`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from invgan.checkpoints.atomic import atomic_write
from invgan.inversion.protocols import InvertibleModel
from invgan.nn.stylegan2.generator import StyleGAN2Generator

ROSINALITY_SUFFIX = ".pt"


def write_rosinality(model: InvertibleModel, path: str | Path, overwrite: bool = False) -> Path:
    """Write `model`'s generator (the networks it inverts with) and average latent to `path`."""
    path = Path(path)
    if path.suffix != ROSINALITY_SUFFIX:
        raise ValueError(f"out={path}: a rosinality file's name must end in {ROSINALITY_SUFFIX}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=true to replace it")
    frozen = model.frozen_generator()
    if not isinstance(frozen.generator, StyleGAN2Generator):
        raise ValueError(
            f"format=rosinality holds StyleGAN2 generators; this model's is "
            f"{type(frozen.generator).__name__}: export it as safetensors, onnx or torchscript"
        )
    content = {
        "g_ema": {
            name: tensor.detach().cpu() for name, tensor in frozen.generator.state_dict().items()
        },
        "latent_avg": frozen.latent_avg.detach().cpu().clone(),
    }
    return atomic_write(path, lambda file: torch.save(content, file))
