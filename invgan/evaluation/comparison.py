"""One comparison table from several evaluations.

`python evaluate.py -m ckpt_path=a.ckpt,b.ckpt inversion=encoder,hybrid` runs one evaluation
per combination (Hydra multirun); `ComparisonTable`, registered in `conf/evaluate.yaml`, then
writes `comparison.md` and `comparison.json` into the sweep folder. Evaluations made apart are
compared with `python -m invgan.compare <run dirs or metrics.json> -o <dir>`
(`invgan.cli.compare`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from invgan.checkpoints.atomic import atomic_write_json, atomic_write_text
from invgan.evaluation.pipeline import METRICS_FILE
from invgan.evaluation.report import markdown_report

log = logging.getLogger(__name__)


def metrics_file(path: Path) -> Path:
    """`path` itself, or the metrics.json inside a run folder."""
    file = path / METRICS_FILE if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no evaluation found at {path} (expected {METRICS_FILE})")
    return file


def write_comparison(paths: list[Path], out_dir: Path) -> Path:
    """comparison.md (the paper's layout, one row per evaluation) and comparison.json."""
    reports: list[dict[str, Any]] = []
    for path in paths:
        file = metrics_file(path)
        report = json.loads(file.read_text())
        report.setdefault("label", file.parent.name)
        reports.append(report)
    if not reports:
        raise ValueError("nothing to compare: no evaluations given")
    atomic_write_json(out_dir / "comparison.json", reports)
    return atomic_write_text(out_dir / "comparison.md", markdown_report(reports))


def _job_order(path: Path) -> tuple[int, str]:
    name = path.parent.name
    return (int(name), name) if name.isdigit() else (1 << 30, name)


class ComparisonTable(Callback):
    """Hydra callback: after a multirun of evaluate.py, compare every job that wrote metrics."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Write comparison.md / comparison.json into the sweep folder."""
        sweep_dir = Path(config.hydra.sweep.dir)
        files = sorted(sweep_dir.glob(f"*/{METRICS_FILE}"), key=_job_order)
        if not files:
            log.warning(
                "no job of the sweep in %s wrote %s: no comparison", sweep_dir, METRICS_FILE
            )
            return
        path = write_comparison(files, sweep_dir)
        log.info("comparison of %d evaluations: %s", len(files), path)
        print(path.read_text())
