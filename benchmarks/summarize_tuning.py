"""Print the table of benchmarks/mnist_invgan_tuning.sh: each setting's iterations in its time
budget and RandFID."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(out_dir: Path) -> None:
    """One markdown row per setting folder that has an evaluation."""
    print("| setting | iterations | RandFID (500) |")
    print("| --- | --- | --- |")
    for metrics_path in sorted(out_dir.glob("*/eval/metrics.json")):
        report = json.loads(metrics_path.read_text())
        fid = report["metrics"]["test/rand_fid_500"]
        name = metrics_path.parent.parent.name
        print(f"| {name} | {report['iteration']} | {fid['value']:.2f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "logs/benchmarks/mnist_invgan_tuning"))
