"""What a training run leaves in its folder: the files that show a run was there, and how
`overwrite=true` clears them for a new run."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from pytorch_lightning.utilities.rank_zero import rank_zero_only

from invgan.utils.wandb_logger import RUN_ID_FILE

log = logging.getLogger(__name__)

# Relative to the run folder (conf/callbacks and conf/logger put them there).
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
# Files that only a run that trained or logged writes (not Hydra's .hydra/ and <job>.log, which
# every start rewrites or appends to, nor what rank zero writes before the processes of a DDP
# run meet, which another rank may not have looked for yet).
_RUN_EVIDENCE = ("checkpoints/*.ckpt", "csv/metrics.csv", "tensorboard/events.out.tfevents.*")
# What a run writes into its folder, all deleted by `overwrite=true`.
RUN_OUTPUTS = (Path("checkpoints"), Path("csv"), Path("tensorboard"), Path("images"), RUN_ID_FILE)


def earlier_run_files(folder: str | Path) -> list[Path]:
    """The files in `folder` that an earlier training run wrote (checkpoints, logged metrics)."""
    return sorted(path for pattern in _RUN_EVIDENCE for path in Path(folder).glob(pattern))


def clear_earlier_run(folder: str | Path) -> list[Path]:
    """Delete the outputs of an earlier run (`RUN_OUTPUTS`) from `folder`; returns those that
    existed. Rank zero deletes: the other ranks of a DDP run would race it."""
    found = [Path(folder) / output for output in RUN_OUTPUTS if (Path(folder) / output).exists()]
    if rank_zero_only.rank != 0:  # type: ignore[attr-defined]  # set by Lightning at import
        return found
    if found:
        log.warning("overwrite=true: deleting the earlier run's %s", ", ".join(map(str, found)))
    for path in found:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return found
