"""Print a benchmark run's curves (MAE and FID against training time) and final table."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def training_seconds_by_step(run_dir: Path) -> dict[int, float]:
    """Logged step (one per training batch) -> cumulative training seconds, from the CSV log."""
    seconds = {}
    with open(run_dir / "csv" / "metrics.csv") as file:
        for row in csv.DictReader(file):
            if row.get("time/train_seconds"):
                seconds[int(row["step"])] = float(row["time/train_seconds"])
    return seconds


def seconds_at(seconds: dict[int, float], step: int) -> float:
    """Training seconds at the logged step closest to `step`."""
    return seconds[min(seconds, key=lambda s: abs(s - step))]


def main(run_dir: Path) -> None:
    """Markdown tables: the curve over snapshots, then the final metrics."""
    seconds = training_seconds_by_step(run_dir)
    print("| iteration | training minutes | test MAE | RandFID | TsRecFID |")
    print("| --- | --- | --- | --- | --- |")
    reports = sorted(
        (json.loads(p.read_text()) for p in (run_dir / "eval").glob("step_*/metrics.json")),
        key=lambda r: r["iteration"],
    )
    for report in reports:
        m = report["metrics"]
        minutes = seconds_at(seconds, report["iteration"]) / 60
        print(
            f"| {report['iteration']} | {minutes:.1f} | {m['test/mae']['value']:.4f} "
            f"| {m['test/rand_fid_500']['value']:.2f} | {m['test/ts_rec_fid_500']['value']:.2f} |"
        )
    final = json.loads((run_dir / "eval" / "final" / "metrics.json").read_text())
    print(f"\nFinal ({final['iteration']} iterations, device {final['device']}):\n")
    print("| metric | value | N | protocol |")
    print("| --- | --- | --- | --- |")
    for name, entry in final["metrics"].items():
        print(
            f"| {name} | {entry['value']:.6g} | {entry.get('count', '')} | {entry['protocol']} |"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
