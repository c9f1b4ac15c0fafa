"""invgan checkpoint files: safe loading of `.ckpt` and exported `.safetensors` files, the
export itself, and clear errors when a file's weights do not fit the configured model.

An exported file holds the LightningModule's state dict as safetensors and, in its metadata
(text only), the run's config YAML and any other entry evaluation needs to rebuild the model.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn

from invgan.checkpoints.atomic import atomic_write
from invgan.checkpoints.keys import CONFIG_KEY, GENERATOR_ARCHITECTURE_KEY
from invgan.checkpoints.safe_load import CheckpointError, safe_torch_load

log = logging.getLogger(__name__)
SAFETENSORS_SUFFIX = ".safetensors"
# Checkpoint entries besides the weights that an exported file keeps. The config is YAML text
# in both formats; the others are structures, stored as YAML text and parsed back.
STRUCTURED_ENTRIES = (GENERATOR_ARCHITECTURE_KEY,)
# Names listed per kind of state-dict mismatch; the rest are only counted.
LISTED_NAMES = 5


def _read_safetensors(path: Path) -> dict[str, Any]:
    """A checkpoint-shaped dict (state_dict + config entries) from an exported file."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as file:
            metadata = file.metadata() or {}
            state_dict = {name: file.get_tensor(name) for name in file.keys()}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(
            f"cannot read {path}: the file is truncated or not a safetensors file ({error})"
        ) from error
    if CONFIG_KEY not in metadata:
        raise CheckpointError(
            f"{path} has no '{CONFIG_KEY}' in its metadata: it was not written by "
            "`python -m invgan.export`, so the model that produced it is unknown."
        )
    checkpoint: dict[str, Any] = {"state_dict": state_dict, CONFIG_KEY: metadata[CONFIG_KEY]}
    for key in STRUCTURED_ENTRIES:
        if key in metadata:
            checkpoint[key] = OmegaConf.to_container(OmegaConf.create(metadata[key]))
    return checkpoint


def load_checkpoint(path: str | os.PathLike, mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint of invgan's train.py (`.ckpt`, with `weights_only=True`) or a file
    exported from one (`.safetensors`), never unpickling arbitrary objects; `mmap` maps a
    `.ckpt`'s tensors instead of reading them (for reading its config)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {path}. Pass ckpt_path=<run dir>/checkpoints/last.ckpt "
            "of a train.py run (or a .safetensors file exported from one)."
        )
    if path.suffix == SAFETENSORS_SUFFIX:
        return _read_safetensors(path)
    checkpoint = safe_torch_load(path, mmap=mmap)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        found = sorted(checkpoint)[:10] if isinstance(checkpoint, dict) else type(checkpoint)
        raise CheckpointError(
            f"{path} is not a Lightning checkpoint (no 'state_dict'; it holds {found})."
        )
    if CONFIG_KEY not in checkpoint:
        raise CheckpointError(
            f"{path} has no '{CONFIG_KEY}' entry: it was not written by invgan's train.py, "
            "so the model that produced it is unknown."
        )
    return checkpoint


def trusted_stored_path(
    path: str | os.PathLike | None, folder: str | os.PathLike | None
) -> Path | None:
    """A file path read from a checkpoint (such as Lightning's best-model path), when it names
    an existing file inside `folder`, this run's own checkpoint folder; otherwise None, with a
    warning that the model's current weights are used instead."""
    if not path:
        return None
    # A resumed checkpoint may come from elsewhere, be stale (a file since deleted) or be
    # planted: its paths must not decide which file is loaded next.
    resolved = Path(path).resolve()
    inside = folder is not None and resolved.is_relative_to(Path(folder).resolve())
    if inside and resolved.is_file():
        return resolved
    reason = "no longer exists" if inside else f"lies outside this run's {folder}"
    log.warning(
        "not loading %s, a path restored from a checkpoint: it %s; using the model's current "
        "weights instead",
        path,
        reason,
    )
    return None


def save_safetensors(
    checkpoint: Mapping[str, Any], path: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Write a checkpoint's weights and config entries as a `.safetensors` file, atomically;
    an existing file is kept unless `overwrite`."""
    path = Path(path)
    if path.suffix != SAFETENSORS_SUFFIX:
        raise ValueError(f"out={path}: the exported file's name must end in {SAFETENSORS_SUFFIX}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=true to replace it")
    # safetensors refuses tensors that share memory (tied weights, views) or are not
    # contiguous: every tensor gets its own contiguous copy, and loading fills each name.
    tensors = {
        name: tensor.detach().cpu().clone(memory_format=torch.contiguous_format)
        for name, tensor in checkpoint["state_dict"].items()
    }
    metadata = {"format": "pt", CONFIG_KEY: checkpoint[CONFIG_KEY]}
    for key in STRUCTURED_ENTRIES:
        if checkpoint.get(key) is not None:
            metadata[key] = OmegaConf.to_yaml(checkpoint[key])
    data = safetensors_bytes(tensors, metadata=metadata)
    return atomic_write(path, lambda file: file.write(data))


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(map(str, tensor.shape)) or "scalar"


def _listed(names: list[str]) -> str:
    more = len(names) - LISTED_NAMES
    return ", ".join(names[:LISTED_NAMES]) + (f" and {more} more" if more > 0 else "")


def state_dict_mismatch(
    expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]
) -> str | None:
    """A short summary of the names and shapes in `found` that differ from `expected`, or None
    when every name and shape matches."""
    missing = [name for name in expected if name not in found]
    unexpected = [name for name in found if name not in expected]
    reshaped = [
        f"{name} {_shape(found[name])} (model: {_shape(tensor)})"
        for name, tensor in expected.items()
        if name in found and found[name].shape != tensor.shape
    ]
    parts = [
        f"{kind} ({len(names)}): {_listed(names)}"
        for kind, names in (
            ("tensors of another shape", reshaped),
            ("missing from the file", missing),
            ("not in the model", unexpected),
        )
        if names
    ]
    return "; ".join(parts) or None


def check_state_dict_fits(
    module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str, hint: str = ""
) -> None:
    """Raise `CheckpointError` summarising how `state_dict` differs from `module`'s own."""
    mismatch = state_dict_mismatch(module.state_dict(), state_dict)
    if mismatch is not None:
        raise CheckpointError(
            f"{source} does not fit the configured {type(module).__name__}: {mismatch}. {hint}"
        )


def load_state_dict_checked(
    module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str
) -> None:
    """`module.load_state_dict(state_dict)` with a summarised error instead of torch's list."""
    check_state_dict_fits(module, state_dict, source)
    module.load_state_dict(state_dict)


def check_resume_checkpoint(module: nn.Module, path: str | os.PathLike) -> None:
    """Refuse, before Lightning restores it, a resume checkpoint that is unsafe, unreadable,
    weights only, or of another model than the configured one (the file is left as it is)."""
    if Path(path).suffix == SAFETENSORS_SUFFIX:
        raise CheckpointError(
            f"ckpt_path={path} holds weights only; resuming needs the .ckpt it was exported "
            "from (optimizer and loop state)."
        )
    checkpoint = load_checkpoint(path)
    check_state_dict_fits(
        module,
        checkpoint["state_dict"],
        f"ckpt_path={path}",
        hint="Resume with the model config the checkpoint was trained with (stored in it as "
        f"'{CONFIG_KEY}'), or leave ckpt_path unset to start a new run.",
    )
