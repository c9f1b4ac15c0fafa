"""A run folder holds one run: resumed there, every logger continues it (CSV rows appended, the
same TensorBoard folder and W&B run); a new run there is refused unless `overwrite=true`; runs
shorter than their first validation, and two-process runs, finish with the optimized metric."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
import torch
import wandb
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from invgan.training.csv_logger import AppendingMetricsWriter
from invgan.training.pipeline import train
from tests.conftest import CPU_RUN, TINY_MODELS, run_entry_point
from tests.test_wandb_logging import no_wandb_login  # noqa: F401 (a fixture)

# Synthetic data, 4 iterations an epoch (2 optimizer steps each), every iteration logged.
SHORT = [
    "data=synthetic",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "callbacks.image_grids.every_n_iterations=1000",
    "test=false",
]
TINY_CLI = [*CPU_RUN, *TINY_MODELS["DCGANGenerator"], "data=synthetic"]


def metrics_rows(run: Path) -> list[dict[str, str]]:
    """csv/metrics.csv as rows, each without its empty cells."""
    with (run / "csv" / "metrics.csv").open(newline="") as file:
        return [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(file)]


def steps_with(rows: list[dict[str, str]], column: str) -> list[int]:
    """The steps of the rows that hold `column`, in file order."""
    return [int(row["step"]) for row in rows if column in row]


def digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder`, by relative path."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def offline_wandb(no_wandb_login, monkeypatch, tmp_path):  # noqa: F811
    """Offline W&B runs (no login); WANDB_DIR, which the W&B logger sets, restored after."""
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))


def train_and_finish_wandb(cfg) -> None:
    """`train`, then end the process's W&B run as the end of a train.py process would."""
    try:
        train(cfg)
    finally:
        wandb.finish()


def test_a_run_resumed_in_its_folder_continues_every_log(offline_wandb, train_config):
    first = train_config(*SHORT, "logger=[csv,tensorboard,wandb]", "trainer.max_steps=4")
    run = Path(first.paths.output_dir)
    train_and_finish_wandb(first)  # 2 iterations, then validated (item 6)
    before = metrics_rows(run)
    assert steps_with(before, "train/loss_mmd") == [0, 1]
    again = first.copy()
    again.trainer.max_steps = 12  # resumed from last.ckpt at iteration 2, on to 6
    train_and_finish_wandb(again)
    after = metrics_rows(run)
    # The first part's rows, unchanged and first, then the resumed part's.
    assert after[: len(before)] == before
    assert steps_with(after, "train/loss_mmd") == list(range(6))
    # TensorBoard: both parts' event files in one folder, every iteration once.
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert sorted(e.step for e in events.Scalars("train/loss_mmd")) == list(range(6))
    # W&B: one run, its id kept in the folder, continued by the resumed part.
    run_id = (run / "wandb" / "run_id").read_text().strip()
    parts = sorted((run / "wandb").glob("offline-run-*"))
    assert len(parts) == 2 and all(p.name.endswith(f"-{run_id}") for p in parts)


@pytest.mark.parametrize("limit", ["trainer.max_steps=4", "trainer.max_epochs=0"])
def test_a_run_shorter_than_its_first_validation_returns_the_metric(limit, tmp_path):
    run = tmp_path / "run"
    result = run_entry_point("train.py", *TINY_CLI, limit, f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    job = json.loads((run / "job_result.json").read_text())
    assert job["status"] == "COMPLETED" and job["error"] is None
    # One validation, of the final model, after fitting: what the run returned; then the test.
    rows = metrics_rows(run)
    assert [float(row["val/mae"]) for row in rows if "val/mae" in row] == [job["value"]]
    assert any("test/mae" in row for row in rows)


def test_a_new_run_in_a_folder_holding_one_is_refused_unless_overwrite(train_config):
    first = train_config(*SHORT, "trainer.max_epochs=2")
    run = Path(first.paths.output_dir)
    train(first)
    (best,) = (run / "checkpoints").glob("epoch_*.ckpt")  # the lower val/mae's epoch
    assert steps_with(metrics_rows(run), "train/loss_mmd") == list(range(8))
    before = digests(run)
    fresh = first.copy()
    fresh.auto_resume = False
    with pytest.raises(FileExistsError) as refused:
        train(fresh)
    message = str(refused.value)
    assert str(run) in message and "hydra.run.dir=" in message and "overwrite=true" in message
    assert "auto_resume=false" in message
    assert digests(run) == before
    from_best = first.copy()
    from_best.ckpt_path = str(best)  # restarting from another checkpoint is a new run too
    with pytest.raises(FileExistsError, match="ckpt_path=.*starts another"):
        train(from_best)
    assert digests(run) == before
    # overwrite=true may not delete the checkpoint it starts from.
    from_best.overwrite = True
    with pytest.raises(ValueError, match="copy it out of that folder"):
        train(from_best)
    assert digests(run) == before

    fresh.overwrite = True
    fresh.trainer.max_steps = 4
    train(fresh)
    assert not best.exists(), "the earlier run's best checkpoint is gone with it"
    assert steps_with(metrics_rows(run), "train/loss_mmd") == [0, 1]
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert int(last["state_dict"]["iteration"]) == 2


def test_a_refused_train_py_run_leaves_the_folder_untouched(tmp_path):
    """The refusal comes before Hydra writes the run's config and log into the folder."""
    run = tmp_path / "run"
    first = run_entry_point("train.py", *TINY_CLI, "trainer.max_steps=2", f"hydra.run.dir={run}")
    assert first.returncode == 0, first.stderr[-3000:]
    before = digests(run)
    assert ".hydra/config.yaml" in before and "train.log" in before
    again = run_entry_point(
        "train.py", *TINY_CLI, "trainer.max_steps=2", "auto_resume=false", f"hydra.run.dir={run}"
    )
    assert again.returncode == 2, again.stderr[-3000:]
    assert f"the run folder {run} already holds a training run" in again.stderr
    assert digests(run) == before


def test_a_requeued_run_started_from_a_checkpoint_continues_its_own(train_config, tmp_path):
    """SLURM re-runs the same command (ckpt_path= included) in the same folder after a
    time-out: the run continues from its own last.ckpt, not again from ckpt_path."""
    origin = train_config(*SHORT, "trainer.max_steps=4")
    train(origin)
    start = tmp_path / "start.ckpt"
    start.write_bytes((Path(origin.paths.output_dir) / "checkpoints" / "last.ckpt").read_bytes())
    job = train_config(*SHORT, "trainer.max_steps=8", f"ckpt_path={start}")
    run = Path(job.paths.output_dir)
    job.trainer.max_steps = 6  # the time-out: stops after one more iteration
    train(job)
    job.trainer.max_steps = 8  # re-queued: the same command
    train(job)
    assert steps_with(metrics_rows(run), "train/loss_mmd") == [2, 3]
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert int(last["state_dict"]["iteration"]) == 4


def test_logs_without_a_checkpoint_to_continue_are_refused(train_config):
    first = train_config(*SHORT, "trainer.max_steps=4")
    run = Path(first.paths.output_dir)
    train(first)
    (run / "checkpoints" / "last.ckpt").unlink()  # a run that crashed before its first save
    before = digests(run)
    with pytest.raises(FileExistsError, match="no checkpoints/last.ckpt to continue from"):
        train(first.copy())
    assert digests(run) == before


def test_writers_in_other_processes_widen_the_metrics_header(tmp_path):
    """The writers of a spawned fit and test each know only their own columns; the file keeps
    every row under the union of the columns, whichever writes when."""
    fit = AppendingMetricsWriter(str(tmp_path))
    fit.log_metrics({"lr-Adam": 0.1}, 0)
    fit.log_metrics({"train/loss": 2.0}, 1)
    fit.save()
    test = AppendingMetricsWriter(str(tmp_path))  # a new process: none of those columns
    test.log_metrics({"test/mae": 0.5}, 2)
    test.save()
    fit.log_metrics({"train/loss": 1.0}, 3)  # an older writer, behind the file's header
    fit.save()
    with (tmp_path / "metrics.csv").open(newline="") as file:
        reader = csv.DictReader(file)
        rows = [
            (row["step"], row["lr-Adam"], row["train/loss"], row["test/mae"]) for row in reader
        ]
    assert reader.fieldnames == ["lr-Adam", "step", "test/mae", "train/loss"]
    assert rows == [
        ("0", "0.1", "", ""),
        ("1", "", "2.0", ""),
        ("2", "", "", "0.5"),
        ("3", "", "1.0", ""),
    ]
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_short_two_process_run_logs_fit_validation_and_test(offline_wandb, tmp_path):
    """Each stage of a spawned-DDP run (fit, the final validation, test) runs in new processes
    whose loggers meet the files the earlier stages wrote."""
    run = tmp_path / "run"
    result = run_entry_point(
        "train.py",
        "trainer=ddp_sim",
        *TINY_CLI,
        "logger=[csv,tensorboard,wandb]",
        "trainer.max_steps=4",
        "callbacks.image_grids.every_n_iterations=1",
        "callbacks.image_grids.num_images=4",
        f"hydra.run.dir={run}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    job = json.loads((run / "job_result.json").read_text())
    assert job["status"] == "COMPLETED"
    rows = metrics_rows(run)
    assert any("lr-Adam" in row for row in rows)  # fit's
    assert [float(row["val/mae"]) for row in rows if "val/mae" in row] == [job["value"]]
    assert any("test/mae" in row for row in rows)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert {"val/mae", "test/mae"} <= set(events.Tags()["scalars"])
    run_id = (run / "wandb" / "run_id").read_text().strip()
    (wandb_run,) = (run / "wandb").glob("offline-run-*")
    assert wandb_run.name.endswith(f"-{run_id}")
    # The image grids that the spawned fit logged, in the run's W&B folder.
    assert {p.name.split("_")[0] for p in wandb_run.rglob("*.png")} == {
        "samples",
        "reconstructions",
    }
