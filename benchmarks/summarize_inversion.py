"""Print the inversion-method comparison table of benchmarks/inversion_methods.sh and copy
the runs' last sample / reconstruction grids to docs/images/.

Usage: python benchmarks/summarize_inversion.py <out_dir> [method ...]
Each method is a folder `<out_dir>/eval/<method>/` holding evaluate.py's metrics.json; the
methods are listed in the order given (default: alphabetical).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
# Training runs whose last grids are copied, and which grids.
GRIDS = {
    "generator": ("samples", "reconstructions"),
    "psp": ("reconstructions",),
    "indomain": ("reconstructions",),
    "e4e": ("reconstructions",),
    "restyle": ("reconstructions",),
}


def method_row(metrics_file: Path, fastest: float) -> list[str]:
    """Method, inversion config, MAE, LPIPS (alex, vgg), seconds per image and cost relative
    to the fastest method."""
    report = json.loads(metrics_file.read_text())
    metrics = report["metrics"]
    inversion = report["inversion"]
    target = inversion.pop("_target_").rsplit(".", 1)[-1]
    settings = ", ".join(
        f"{key}={value}"
        for key, value in inversion.items()
        if key
        in (
            "space",
            "steps",
            "init",
            "restarts",
            "domain_weight",
            "lpips_weight",
            "iterations",
            "tune_steps",
        )
    )
    seconds = metrics["test/reconstruction_seconds_per_image"]["value"]
    return [
        metrics_file.parent.name,
        f"{target}({settings})" if settings else target,
        f"{metrics['test/mae']['value']:.4f}",
        # Evaluations recorded before LPIPS was split by network call the AlexNet one `lpips`.
        f"{(metrics.get('test/lpips_alex') or metrics['test/lpips'])['value']:.4f}",
        # VGG as well: methods that optimise LPIPS-alex (pSp, PTI) lower the AlexNet score more
        # than the perceptual distance.
        f"{metrics['test/lpips_vgg']['value']:.4f}" if "test/lpips_vgg" in metrics else "-",
        f"{seconds:.3g}",
        f"{seconds / fastest:.0f}x",
        str(metrics["test/mae"]["count"]),
    ]


def copy_last_grids(out_dir: Path) -> None:
    """docs/images/<out_dir name>_<run>_<grid>.png from each run's last grid of that kind."""
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    for run, kinds in GRIDS.items():
        for kind in kinds:
            grids = sorted((out_dir / run / "images").glob(f"{kind}_*.png"))
            if grids:
                shutil.copy(grids[-1], DOCS_IMAGES / f"{out_dir.name}_{run}_{kind}.png")


def main(out_dir: Path, methods: list[str]) -> None:
    """The table in markdown, then the grids."""
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
    header = [
        "method",
        "inversion",
        "MAE",
        "LPIPS-alex",
        "LPIPS-vgg",
        "s/image",
        "time vs fastest",
        "images",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for f in files:
        print("| " + " | ".join(method_row(f, fastest)) + " |")
    copy_last_grids(out_dir)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), sys.argv[2:])
