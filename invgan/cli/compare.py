"""Compare evaluations made apart in one table:

    python -m invgan.compare <run dirs or metrics.json> [-o <dir>]

writes `comparison.md` (the paper's layout, one row per evaluation) and `comparison.json` into
`<dir>` (default: the current folder) and prints the table. A multirun of evaluate.py writes the
same table into its sweep folder by itself (`invgan.evaluation.comparison.ComparisonTable`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from invgan.evaluation.comparison import write_comparison


def main(argv: list[str] | None = None) -> None:
    """Command line: compare evaluations made apart."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run folders or metrics.json files")
    parser.add_argument("-o", "--out", type=Path, default=Path("."), help="output folder")
    args = parser.parse_args(argv)
    path = write_comparison(args.paths, args.out)
    print(path.read_text())
