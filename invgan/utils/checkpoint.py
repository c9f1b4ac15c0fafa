"""Safe loading of invgan checkpoints: tensors and plain data only, with clear errors."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from invgan.callbacks.run_config import CONFIG_KEY


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used, with the reason and the file in the message."""


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a Lightning checkpoint written by invgan's train.py with `weights_only=True`.

    Never unpickles arbitrary objects: a file that needs code to load is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {path}. Pass ckpt_path=<run dir>/checkpoints/last.ckpt "
            "of a train.py run."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"refusing to load {path}: it contains Python objects other than tensors and plain "
            f"data, which could run code when unpickled ({error}). Only checkpoints written by "
            "invgan's train.py are accepted."
        ) from error
    except (zipfile.BadZipFile, EOFError, RuntimeError) as error:
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is truncated or not a PyTorch "
            f"checkpoint ({error})."
        ) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no 'state_dict').")
    if CONFIG_KEY not in checkpoint:
        raise CheckpointError(
            f"{path} has no '{CONFIG_KEY}' entry: it was not written by invgan's train.py, "
            "so the model that produced it is unknown."
        )
    return checkpoint
