"""Print the backbone benchmark's tables and copy its sample grids to docs/images/.

Usage: python benchmarks/summarize_backbones.py <out_dir of benchmarks/backbones.sh>
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

from omegaconf import OmegaConf

DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


def last_logged(run_dir: Path, key: str) -> str:
    """The last value logged under `key` in the run's CSV log ('' if never)."""
    value = ""
    with open(run_dir / "csv" / "metrics.csv") as file:
        for row in csv.DictReader(file):
            value = row.get(key) or value
    return value


def describe(run_dir: Path) -> str:
    """Resolution and batch size of the run, from its saved config."""
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    return f"{cfg.data.resolution} px, batch {cfg.data.batch_size}"


def main(out_dir: Path) -> None:
    """One row per experiment and width; then the tiled MAE."""
    print("| experiment | width | setting | images/s | iterations | val MAE |")
    print("| --- | --- | --- | --- | --- | --- |")
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    for experiment_dir in sorted(p for p in out_dir.iterdir() if (p / "full_width").is_dir()):
        for width in ("full_width", "reduced_width"):
            run = experiment_dir / width
            images_per_second = float(last_logged(run, "time/images_per_second"))
            iterations = int(last_logged(run, "step") or 0) + 1  # logged once an iteration
            mae = last_logged(run, "val/mae")
            print(
                f"| {experiment_dir.name} | {width.replace('_', ' ')} | {describe(run)} "
                f"| {images_per_second:.3g} | {iterations} | {mae and f'{float(mae):.3f}'} |"
            )
        samples = sorted((experiment_dir / "reduced_width" / "images").glob("samples_*.png"))
        if samples:
            shutil.copy(samples[-1], DOCS_IMAGES / f"{experiment_dir.name}_samples.png")
    tiled = json.loads((out_dir / "tiled_eval" / "metrics.json").read_text())
    entry = tiled["metrics"]["test/tiled_mae"]
    print(
        f"\nTiled reconstruction MAE: {entry['value']:.4f} ({entry['count']} images; "
        f"{entry['protocol']})"
    )
    figure = out_dir / "tiled_apply" / "tiled_reconstruction.png"
    if figure.is_file():
        shutil.copy(figure, DOCS_IMAGES / "imagenet_tiled_reconstruction.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
