"""`torch.load` for files that may come from anyone: tensors and plain data only."""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Sequence
from typing import Any

import torch


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used, with the reason and the file in the message."""


def _refused_global(error: pickle.UnpicklingError) -> str:
    """The line of torch's refusal that names the offending class or function."""
    # The rest of torch's message is boilerplate that suggests `weights_only=False`, which is
    # exactly what must not be done with a file of unknown origin.
    lines = [line for line in str(error).splitlines() if "GLOBAL" in line]
    return lines[0].strip() if lines else str(error)


def safe_torch_load(
    path: str | os.PathLike, allowed_globals: Sequence[type] = (), mmap: bool = False
) -> Any:
    """`torch.load(path, weights_only=True)` on the CPU; `allowed_globals` may also be rebuilt.
    `mmap` maps the tensors' bytes instead of reading them, for a caller that reads other keys.

    A file that pickles anything else (which could run code while unpickling) and a truncated
    or non-PyTorch file raise `CheckpointError` naming the file.
    """
    try:
        with torch.serialization.safe_globals(list(allowed_globals)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        allowed = ", ".join(["tensors", "plain data", *(c.__qualname__ for c in allowed_globals)])
        raise CheckpointError(
            f"refusing to load {path}: it pickles Python objects other than {allowed}, which "
            f"could run code when unpickled ({_refused_global(error)})"
        ) from error
    except (zipfile.BadZipFile, EOFError, RuntimeError) as error:
        raise CheckpointError(
            f"cannot read {path}: the file is truncated or not a PyTorch file ({error})"
        ) from error
