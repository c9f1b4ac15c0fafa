"""Print the InvGAN paper's Table 3 (RandFID and RandRecFID of ReStyle at 1-4 refinement
steps) from the evaluations of benchmarks/restyle_table3.sh, then test-set MAE and inversion
time per step count.

Usage: python benchmarks/summarize_restyle.py <out_dir> [N ...]
Row N reads `<out_dir>/eval/iter_<N>/metrics.json` (default: every iter_* folder). RandFID does
not depend on the inversion, so the script computes it once; every row shows that value.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from invgan.evaluation.report import sample_counts


def fid_cell(report: dict[str, Any], key: str, counts: list[int]) -> str:
    """'v1/v2' over the sample counts, as the paper writes them ('-' where not computed)."""
    values = [report["metrics"].get(f"test/{key}_{count}") for count in counts]
    return "/".join("-" if v is None else f"{v['value']:.2f}" for v in values)


def dataset_name(report: dict[str, Any]) -> str:
    """`datamodules.celeba.CelebADataModule` -> `CelebA`."""
    return report["dataset"].rsplit(".", 1)[-1].removesuffix("DataModule")


def main(out_dir: Path, iterations: list[int]) -> None:
    """Table 3 in Markdown, then MAE and run time per step count."""
    folders = {n: out_dir / "eval" / f"iter_{n}" for n in iterations}
    if not folders:
        folders = {
            int(p.name.removeprefix("iter_")): p for p in sorted((out_dir / "eval").glob("iter_*"))
        }
    missing = [
        str(f / "metrics.json") for f in folders.values() if not (f / "metrics.json").exists()
    ]
    if missing:
        raise SystemExit(f"no metrics.json for: {', '.join(missing)}")
    reports = {n: json.loads((f / "metrics.json").read_text()) for n, f in sorted(folders.items())}
    listed = list(reports.values())
    rand_counts = sample_counts(listed, "rand_fid")
    rec_counts = sample_counts(listed, "rand_rec_fid")
    with_rand = [
        r for r in listed if any(f"test/rand_fid_{c}" in r["metrics"] for c in rand_counts)
    ]
    rand = fid_cell(with_rand[0], "rand_fid", rand_counts) if with_rand else "-"
    print(
        f"| models | RandFID ({'/'.join(map(str, rand_counts))}) "
        f"| RandRecFID ({'/'.join(map(str, rec_counts))}) |"
    )
    print("| --- | --- | --- |")
    for n, report in reports.items():
        label = f"{n}itr {dataset_name(report)} ReStyle"
        print(f"| {label} | {rand} | {fid_cell(report, 'rand_rec_fid', rec_counts)} |")
    print()
    print("| steps | test MAE ±1 | test images | inversion s/image |")
    print("| --- | --- | --- | --- |")
    for n, report in reports.items():
        metrics = report["metrics"]
        mae = metrics.get("test/mae")
        seconds = metrics.get("test/inversion_seconds_per_image")
        print(
            f"| {n} | {'-' if mae is None else format(mae['value'], '.4f')} "
            f"| {'-' if mae is None else mae['count']} "
            f"| {'-' if seconds is None else format(seconds['value'], '.3g')} |"
        )
    source = listed[0]
    print()
    print(
        f"Checkpoint: `{source['source']}` (iteration {source['iteration']}), {source['device']}."
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), [int(n) for n in sys.argv[2:]])
