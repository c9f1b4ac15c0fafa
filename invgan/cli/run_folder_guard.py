"""Refuses a `train.py` run that may not start in its folder before Hydra writes anything there.

Hydra writes `.hydra/*.yaml` and opens the job's log in the run folder before the task runs, so
the task's own check (`checkpoint_to_resume`) comes too late to keep an earlier run's recorded
config and log: the same check runs here first, when Hydra starts a single run. A multirun's
jobs get their folders later, one at a time; the task's check still guards their checkpoints
and metrics.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict

from invgan.cli.user_errors import exit_for_user_error
from invgan.training.resume import RunFolderInUse, checkpoint_to_resume


class RunFolderGuard(Callback):
    """Hydra callback: exits with the refusal before the run folder is written to."""

    def __init__(self, command: str = "train.py") -> None:
        self.command = command

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # As Hydra's run_job sets them when the job starts (which then replaces these), so
        # that `paths.output_dir` (`${hydra:runtime.output_dir}`) resolves here already.
        task = copy.deepcopy(config)
        with open_dict(task):
            task.hydra.runtime.output_dir = str(Path(str(config.hydra.run.dir)).absolute())
        HydraConfig.instance().set_config(task)
        try:
            checkpoint_to_resume(task)
        except RunFolderInUse as refused:
            # Hydra turns a callback's exception into a warning and runs the job anyway.
            exit_for_user_error(refused, self.command)
