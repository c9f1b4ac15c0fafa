"""The W&B logger: online when this machine is logged in to W&B, offline otherwise; one W&B run
per run folder, continued when the run resumes there."""

from __future__ import annotations

import netrc
import os
import secrets
import string
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities.rank_zero import rank_zero_only

WANDB_HOST = "api.wandb.ai"
# The W&B run id of a run folder, under its save_dir: a resumed run logs into the same W&B run.
RUN_ID_FILE = Path("wandb") / "run_id"
_ID_CHARACTERS = string.ascii_lowercase + string.digits


def logged_in_to_wandb() -> bool:
    """True when an API key is in the environment or in ~/.netrc (where `wandb login` puts
    it)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(WANDB_HOST) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def run_folder_wandb_id(save_dir: str | os.PathLike) -> str:
    """The W&B run id stored under `save_dir`; a new one, stored there, when there is none."""
    path = Path(save_dir) / RUN_ID_FILE
    if path.is_file():
        return path.read_text().strip()
    run_id = "".join(secrets.choice(_ID_CHARACTERS) for _ in range(8))  # W&B's own id format
    if rank_zero_only.rank == 0:  # type: ignore[attr-defined]  # the other ranks of a DDP run log nothing to W&B
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(run_id + "\n")
    return run_id


def wandb_logger(
    offline: bool | str = "auto", save_dir: str | os.PathLike = ".", **kwargs: Any
) -> WandbLogger:
    """A `WandbLogger`; `offline="auto"` logs online when logged in, else writes the run under
    `save_dir` for a later `wandb sync` (`WANDB_MODE` in the environment still wins). Its run id
    is the run folder's (`wandb/run_id`), so a resumed run continues its W&B run."""
    if offline == "auto":
        offline = not logged_in_to_wandb()
    elif not isinstance(offline, bool):
        raise ValueError(f"logger.wandb.offline must be auto, true or false, got {offline!r}")
    if not kwargs.get("id") and not kwargs.get("version"):
        # WandbLogger starts W&B with resume="allow": this id continues an existing W&B run.
        kwargs["id"] = run_folder_wandb_id(save_dir)
    # Processes that Lightning spawns (ddp_spawn: fit, validate, test) attach to this process's
    # W&B run, but place its files (logged images) under $WANDB_DIR or their working directory.
    os.environ["WANDB_DIR"] = os.path.abspath(save_dir)
    return WandbLogger(offline=offline, save_dir=os.fspath(save_dir), **kwargs)
