"""The CSV logger: `csv/metrics.csv` keeps every row across resumes, fit -> test and processes.

Lightning's `CSVLogger` deletes an existing metrics file when it starts (a resumed run loses
its history), and each of its writers knows only the columns it wrote itself: a writer that
comes to an existing file with other columns (the test stage of a spawned-DDP run, after fit
wrote the file in another process) fails with "dict contains fields not in fieldnames". Here
the file is the record of the columns: rows are appended under its header, and when rows bring
new columns the file is rewritten, atomically, under the union of both.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from invgan.checkpoints.atomic import atomic_write_text


def csv_header(path: Path) -> list[str]:
    """The column names of a CSV file, or [] when there is no file (or it is empty)."""
    if not path.is_file():
        return []
    with path.open(newline="") as file:
        return next(csv.reader(file), [])


class AppendingMetricsWriter(ExperimentWriter):
    """Lightning's writer (hparams.yaml, metrics.csv), appending to an existing metrics file."""

    def _check_log_dir_exists(self) -> None:
        """Keep what the folder holds: Lightning would delete the metrics file here."""

    def save(self) -> None:
        """Append the recorded rows; with new columns, rewrite the file under the wider header."""
        if not self.metrics:
            return
        path = Path(self.metrics_file_path)
        header = csv_header(path)
        new = sorted(set().union(*self.metrics) - set(header))
        if not header:
            self._write(path, new, [])
        elif new:
            # Read again on every rewrite: another process may have written since this one.
            with path.open(newline="") as file:
                rows = list(csv.DictReader(file))
            self._write(path, sorted({*header, *new}), rows)
        else:
            with path.open("a", newline="") as file:
                csv.DictWriter(file, fieldnames=header).writerows(self.metrics)
        self.metrics_keys = csv_header(path)
        self.metrics = []

    def _write(self, path: Path, header: list[str], earlier: list[dict[str, str]]) -> None:
        """The whole file: `header`, the `earlier` rows, then the recorded ones."""
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=header)
        writer.writeheader()
        writer.writerows(earlier)
        writer.writerows(self.metrics)
        atomic_write_text(path, text.getvalue())


class AppendingCSVLogger(CSVLogger):
    """Lightning's `CSVLogger` whose metrics file is appended to, never replaced: give it a fixed
    `version` (the run folder's `csv/`) and a resumed run continues the same file."""

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingMetricsWriter:
        """The writer, made on first use (rank zero only, as Lightning's)."""
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingMetricsWriter(log_dir=self.log_dir)
        assert isinstance(self._experiment, AppendingMetricsWriter)  # only this class sets it
        return self._experiment
