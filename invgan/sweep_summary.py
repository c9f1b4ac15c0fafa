"""A summary of a `train.py` sweep: each job's overrides, status and returned metric.

`python train.py -m model.loss.mmd_weight=0.1,1,10 seed=1,2` runs one job per combination,
each in its own folder. `SweepSummary` (registered in `conf/train.yaml`) writes
`job_result.json` into every job folder when the job ends (so it works with any launcher,
SLURM included, where jobs run in other processes), and `sweep_summary.md` / `.json` into the
sweep folder when the sweep ends, best job first.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from invgan.checkpoints.atomic import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)
JOB_RESULT_FILE = "job_result.json"
MODES = ("min", "max")


def _sort_key(result: dict[str, Any], mode: str) -> tuple[int, float]:
    """Completed jobs with a finite value first, best first; then the others."""
    value = result.get("value")
    if result["status"] != "COMPLETED" or value is None or not math.isfinite(value):
        return (1, 0.0)
    return (0, value if mode == "min" else -value)


def summary_markdown(results: list[dict[str, Any]], metric: str | None) -> str:
    """A Markdown table of the jobs: number, overrides, status, returned value."""
    lines = [
        f"| job | overrides | status | {metric or 'returned value'} |",
        "| --- | --- | --- | --- |",
    ]
    for result in results:
        value = result.get("value")
        shown = "-" if value is None else f"{value:.6g}"
        overrides = " ".join(result["overrides"]) or "(none)"
        lines.append(f"| {result['job']} | `{overrides}` | {result['status']} | {shown} |")
    return "\n".join(lines) + "\n"


class SweepSummary(Callback):
    """Hydra callback: a result file per job, and a ranked table of the whole sweep."""

    def __init__(self, mode: str = "min") -> None:
        if mode not in MODES:
            raise ValueError(
                f"hydra.callbacks.sweep_summary.mode must be one of {MODES}, got {mode!r}"
            )
        self.mode = mode

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """Write the job's overrides, status and returned metric into its folder."""
        value, error = None, None
        if job_return.status == JobStatus.COMPLETED:
            value = job_return.return_value
        else:
            # `return_value` of a failed job prints Hydra's "Error executing job" line and
            # re-raises; Hydra does both itself after the callbacks, so read the exception here.
            error = repr(job_return._return_value)
        hydra_cfg = job_return.hydra_cfg
        runtime = hydra_cfg.hydra.runtime if hydra_cfg else None
        # A single run (no multirun) has no job number.
        job = int(OmegaConf.select(hydra_cfg, "hydra.job.num", default=0)) if hydra_cfg else 0
        folder = Path(runtime.output_dir) if runtime else Path(job_return.working_dir or ".")
        atomic_write_json(
            folder / JOB_RESULT_FILE,
            {
                "job": job,
                "overrides": list(job_return.overrides or []),
                "status": job_return.status.name,
                "metric": config.get("optimized_metric"),
                "value": None if value is None else float(value),
                "error": error,
            },
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Rank every job of the sweep folder by its returned metric."""
        sweep_dir = Path(config.hydra.sweep.dir)
        results = [json.loads(p.read_text()) for p in sweep_dir.glob(f"*/{JOB_RESULT_FILE}")]
        if not results:
            log.warning("no job of the sweep in %s wrote %s", sweep_dir, JOB_RESULT_FILE)
            return
        results.sort(key=lambda result: (_sort_key(result, self.mode), result["job"]))
        atomic_write_json(sweep_dir / "sweep_summary.json", results)
        table = summary_markdown(results, config.get("optimized_metric"))
        path = atomic_write_text(sweep_dir / "sweep_summary.md", table)
        log.info(
            "sweep summary (%s %s first): %s", self.mode, config.get("optimized_metric"), path
        )
        print(table)
