"""Which checkpoint a training run resumes from."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

log = logging.getLogger(__name__)


def checkpoint_to_resume(cfg: DictConfig) -> str | None:
    """`ckpt_path` when given; otherwise, with `auto_resume`, the run folder's own last.ckpt if
    one exists (a SLURM job re-queued after a time-out runs again in the same folder)."""
    if cfg.get("ckpt_path"):
        return str(cfg.ckpt_path)
    own = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    if cfg.get("auto_resume") and own.is_file():
        log.info("resuming from this run folder's own %s", own)
        return str(own)
    return None
