"""When training values are worth logging."""

from __future__ import annotations

import pytorch_lightning as pl


def logs_this_step(trainer: pl.Trainer, batch_idx: int) -> bool:
    """Whether training batch `batch_idx` logs its values: when the logger records it (every
    `trainer.log_every_n_steps` batches), on the last batch of each epoch and of the run (so
    the final values reach `callback_metrics`, checkpoints and sweeps), and in `fast_dev_run`.

    Lightning spends about half a millisecond on every value passed to `log`, a few per cent of
    a small model's step, so per-step values are computed and logged only on these batches;
    the progress bar shows them at the same pace.
    """
    # fast_dev_run is set in Trainer.__init__, outside the class body its stubs read.
    fast_dev_run = trainer.fast_dev_run  # type: ignore[attr-defined]
    if fast_dev_run or getattr(trainer._logger_connector, "should_update_logs", True):
        return True
    last_of_epoch = batch_idx + 1 >= trainer.num_training_batches
    # Within one step of max_steps, before or after this batch's optimizer steps.
    return last_of_epoch or 0 <= trainer.max_steps - trainer.global_step <= 1
