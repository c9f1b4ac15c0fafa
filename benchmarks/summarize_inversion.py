"""Print the inversion-method comparison table of benchmarks/inversion_methods.sh.

Usage: python benchmarks/summarize_inversion.py <out_dir> [method ...]
Each method is a folder `<out_dir>/eval/<method>/` holding evaluate.py's metrics.json; the
methods are listed in the order given (default: alphabetical).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def method_row(metrics_file: Path, fastest: float) -> list[str]:
    """Method, inversion config, MAE, LPIPS, seconds per image and cost relative to the
    fastest method."""
    report = json.loads(metrics_file.read_text())
    metrics = report["metrics"]
    inversion = report["inversion"]
    target = inversion.pop("_target_").rsplit(".", 1)[-1]
    settings = ", ".join(
        f"{key}={value}"
        for key, value in inversion.items()
        if key in ("space", "steps", "init", "restarts", "domain_weight", "lpips_weight")
    )
    seconds = metrics["test/reconstruction_seconds_per_image"]["value"]
    return [
        metrics_file.parent.name,
        f"{target}({settings})" if settings else target,
        f"{metrics['test/mae']['value']:.4f}",
        f"{metrics['test/lpips']['value']:.4f}",
        f"{seconds:.3g}",
        f"{seconds / fastest:.0f}x",
        str(metrics["test/mae"]["count"]),
    ]


def main(out_dir: Path, methods: list[str]) -> None:
    """The table in markdown."""
    eval_dir = out_dir / "eval"
    names = methods or sorted(p.name for p in eval_dir.iterdir() if p.is_dir())
    files = [eval_dir / name / "metrics.json" for name in names]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"no metrics.json for: {', '.join(missing)}")
    fastest = min(
        json.loads(f.read_text())["metrics"]["test/reconstruction_seconds_per_image"]["value"]
        for f in files
    )
    header = ["method", "inversion", "MAE", "LPIPS", "s/image", "time vs fastest", "images"]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for f in files:
        print("| " + " | ".join(method_row(f, fastest)) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), sys.argv[2:])
