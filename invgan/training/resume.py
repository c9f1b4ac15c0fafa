"""Which checkpoint a training run resumes from, and whether it may start in its folder.

A run folder holds one run. A run started again there continues it (from its own last.ckpt);
a run that would start over in a folder holding another (`auto_resume=false`, a `ckpt_path`
from elsewhere, or no last.ckpt to continue) is refused before it writes anything, unless
`overwrite=true` clears the folder first: its checkpoints and logs would otherwise mix with the
earlier run's, or replace them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from invgan.checkpoints.format import load_checkpoint
from invgan.checkpoints.keys import CONFIG_KEY
from invgan.training.run_folder import LAST_CHECKPOINT, RUN_OUTPUTS, earlier_run_files

log = logging.getLogger(__name__)


class RunFolderInUse(FileExistsError):
    """The run folder holds another run that this one would overwrite."""


def _same_file(first: str | Path, second: Path) -> bool:
    return Path(first).resolve() == second.resolve()


def _started_from(own: Path, ckpt_path: str) -> bool:
    """Whether the run that wrote `own` (this folder's last.ckpt) was started from `ckpt_path`:
    the same command re-queued (SLURM after a time-out) continues it rather than starting over."""
    stored = OmegaConf.create(load_checkpoint(own, mmap=True)[CONFIG_KEY]).get("ckpt_path")
    return bool(stored) and _same_file(stored, Path(ckpt_path))


def _refusal(folder: Path, found: list[Path], reason: str, to_continue: str) -> RunFolderInUse:
    """The error naming the folder, what is in it, and the overrides that get past it
    (`to_continue`: how to continue the folder's run, "" when it has no last.ckpt)."""
    shown = ", ".join(str(path.relative_to(folder)) for path in found[:4])
    more = f" and {len(found) - 4} more" if len(found) > 4 else ""
    outputs = ", ".join(str(output) for output in RUN_OUTPUTS)
    fixes = ["start elsewhere with hydra.run.dir=<another folder>"]
    if to_continue:
        fixes.append(f"continue that run from its {LAST_CHECKPOINT} {to_continue}")
    fixes.append(f"replace it with overwrite=true (deletes its {outputs})")
    return RunFolderInUse(
        f"the run folder {folder} already holds a training run ({shown}{more}); {reason}, "
        f"and its checkpoints and logs would overwrite or mix with that run's. "
        f"Either {'; or '.join(fixes)}."
    )


def checkpoint_to_resume(cfg: DictConfig) -> str | None:
    """The checkpoint this run resumes from: with `auto_resume`, the run folder's own last.ckpt
    when it exists and was written by a run started from the same `ckpt_path` (or none): a
    SLURM job re-queued after a time-out runs the same command again in the same folder;
    otherwise `ckpt_path`. Raises `RunFolderInUse` when the run would start
    over in a folder holding another run, unless `overwrite` (the caller then clears it)."""
    folder = Path(cfg.paths.output_dir)
    own = folder / LAST_CHECKPOINT
    ckpt_path = str(cfg.ckpt_path) if cfg.get("ckpt_path") else None
    if cfg.get("overwrite"):
        # The folder's earlier run is deleted (`clear_earlier_run`) once the checkpoint is vetted.
        if ckpt_path and any(
            Path(ckpt_path).resolve().is_relative_to((folder / output).resolve())
            for output in RUN_OUTPUTS
        ):
            raise ValueError(
                f"ckpt_path={ckpt_path} lies in the run folder {folder}, whose checkpoints "
                f"overwrite=true deletes: copy it out of that folder first"
            )
        return ckpt_path
    found = earlier_run_files(folder)
    if ckpt_path:
        if cfg.get("auto_resume") and own.is_file() and _started_from(own, ckpt_path):
            log.info("this folder's run started from ckpt_path=%s: resuming %s", ckpt_path, own)
            return str(own)
        if found and not _same_file(ckpt_path, own):
            to_continue = "by leaving ckpt_path out" if own.is_file() else ""
            raise _refusal(folder, found, f"ckpt_path={ckpt_path} starts another", to_continue)
        return ckpt_path
    if cfg.get("auto_resume") and own.is_file():
        log.info("resuming from this run folder's own %s", own)
        return str(own)
    if found:
        reason = (
            "auto_resume=false starts a new one"
            if own.is_file()
            else f"it has no {LAST_CHECKPOINT} to continue from"
        )
        raise _refusal(folder, found, reason, "with auto_resume=true" if own.is_file() else "")
    return None
