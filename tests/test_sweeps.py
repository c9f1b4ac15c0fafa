"""Hydra multirun sweeps of train.py: one folder per job, a ranked summary of the sweep."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import CPU_RUN, TINY_MODELS, run_entry_point


def test_grid_sweep_runs_each_job_in_its_folder_and_ranks_them(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_entry_point(
        "train.py",
        "-m",
        "data=synthetic",
        "debug=fdr",
        *CPU_RUN,
        *TINY_MODELS["DCGANGenerator"],
        "model.loss.mmd_weight=0.1,10",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = [json.loads((sweep / str(n) / "job_result.json").read_text()) for n in range(2)]
    assert [job["overrides"][-1] for job in jobs] == [
        "model.loss.mmd_weight=0.1",
        "model.loss.mmd_weight=10",
    ]
    for job in jobs:
        assert job["status"] == "COMPLETED" and job["metric"] == "val/mae"
        assert job["value"] > 0
    # Each job trained in its own folder, and the summary ranks them by val/mae, lowest first.
    assert all((sweep / str(n) / "checkpoints" / "last.ckpt").is_file() for n in range(2))
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert sorted(job["value"] for job in jobs) == [job["value"] for job in summary]
    table = (sweep / "sweep_summary.md").read_text()
    assert table.startswith("| job | overrides | status | val/mae |")
    assert f"| {summary[0]['value']:.6g} |" in table.splitlines()[2]


def test_optuna_search_runs_trials_and_reports_the_best(tmp_path):
    sweep = tmp_path / "optuna"
    result = run_entry_point(
        "train.py",
        "-m",
        "hparams_search=invgan_optuna",
        "hydra.sweeper.n_trials=2",
        "data=synthetic",
        "debug=fdr",
        *CPU_RUN,
        *TINY_MODELS["DCGANGenerator"],
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert len(summary) == 2
    # Each trial drew its own loss weights and learning rates within the search space, and
    # Optuna's best is the lowest val/mae the trials returned.
    assert summary[0]["value"] == pytest.approx(best["best_value"])
    mmd = [
        float(o.split("=")[1]) for job in summary for o in job["overrides"] if "mmd_weight" in o
    ]
    assert len(set(mmd)) == 2 and all(0.01 <= value <= 10 for value in mmd)


def test_failed_job_is_recorded_without_a_second_hydra_error_line(tmp_path, capsys):
    from hydra.core.utils import JobReturn, JobStatus
    from omegaconf import OmegaConf

    from invgan.sweep_summary import JOB_RESULT_FILE, SweepSummary

    hydra_cfg = OmegaConf.create(
        {"hydra": {"runtime": {"output_dir": str(tmp_path)}, "job": {"num": 3}}}
    )
    failed = JobReturn(
        overrides=["seed=1"],
        hydra_cfg=hydra_cfg,
        status=JobStatus.FAILED,
        _return_value=ValueError("model.loss.mmd_weight=-1 must be >= 0"),
    )
    SweepSummary().on_job_end(OmegaConf.create({"optimized_metric": "val/mae"}), failed)
    record = json.loads((tmp_path / JOB_RESULT_FILE).read_text())
    assert record["job"] == 3 and record["status"] == "FAILED" and record["value"] is None
    assert "mmd_weight=-1" in record["error"]
    # Hydra prints this line once itself, after the callbacks.
    assert "Error executing job" not in capsys.readouterr().err
