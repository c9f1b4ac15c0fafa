"""The W&B logger: online when this machine is logged in to W&B, offline otherwise."""

from __future__ import annotations

import netrc
import os
from typing import Any

from pytorch_lightning.loggers import WandbLogger

WANDB_HOST = "api.wandb.ai"


def logged_in_to_wandb() -> bool:
    """True when an API key is in the environment or in ~/.netrc (where `wandb login` puts
    it)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(WANDB_HOST) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_logger(offline: bool | str = "auto", **kwargs: Any) -> WandbLogger:
    """A `WandbLogger`; `offline="auto"` logs online when logged in, else writes the run under
    `save_dir` for a later `wandb sync` (`WANDB_MODE` in the environment still wins)."""
    if offline == "auto":
        offline = not logged_in_to_wandb()
    elif not isinstance(offline, bool):
        raise ValueError(f"logger.wandb.offline must be auto, true or false, got {offline!r}")
    return WandbLogger(offline=offline, **kwargs)
