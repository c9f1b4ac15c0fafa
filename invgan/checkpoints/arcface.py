"""ArcFace IR-SE50 weight files (`model_ir_se50.pth`): pSp's identity loss and the trunk its
encoders start from."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from invgan.checkpoints.safe_load import CheckpointError, safe_torch_load

# Where a missing ArcFace weights file can be pointed at.
ARCFACE_WEIGHTS_ENV = "INVGAN_ARCFACE_WEIGHTS"


def read_arcface_weights(path: str | os.PathLike | None) -> dict[str, torch.Tensor]:
    """The state dict of an ArcFace IR-SE network file (`model_ir_se50.pth`), loaded safely."""
    hint = (
        "Download the IR-SE50 ArcFace weights distributed with pSp (model_ir_se50.pth, from "
        "TreB1eN's InsightFace_Pytorch) and pass their path in the config "
        f"(model.identity.weights_path / model.encoder.backbone_weights) or set "
        f"{ARCFACE_WEIGHTS_ENV}."
    )
    if path is None:
        raise FileNotFoundError(f"no ArcFace weights file given. {hint}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ArcFace weights not found: {path}. {hint}")
    expected = (
        "An ArcFace weights file must be a state dict of the IR-SE50 network (a dict of tensors "
        "named input_layer.*, body.*, output_layer.*), as model_ir_se50.pth is. A file that "
        "pickles a whole model can be converted where it was made, from the model object: "
        "torch.save(model.state_dict(), 'model_ir_se50.pth')."
    )
    try:
        state = safe_torch_load(path)
    except CheckpointError as error:
        raise CheckpointError(f"{error}. {expected} {hint}") from error
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict. {expected}")
    return state
