"""Tables of evaluation reports (the `metrics.json` contents): the paper's Table 1 layout in
Markdown, the other metrics beside it, and a plain-text listing for the console."""

from __future__ import annotations

from typing import Any

# Table 1 of the InvGAN paper: generated-image FIDs as "N1/N2" cells, then MAE and run time.
FID_COLUMNS = {
    "RandFID": "rand_fid",
    "RandRecFID": "rand_rec_fid",
    "TsRecFID": "ts_rec_fid",
    "IntTsFID": "int_ts_fid",
}
KID_COLUMNS = {
    title.replace("FID", "KID"): key.replace("_fid", "_kid") for title, key in FID_COLUMNS.items()
}
RECONSTRUCTION_COLUMNS = {
    "MSE": ("mse", ".4f"),
    "PSNR (dB)": ("psnr", ".2f"),
    "SSIM": ("ssim", ".4f"),
    "LPIPS alex": ("lpips_alex", ".4f"),
    "LPIPS vgg": ("lpips_vgg", ".4f"),
    "tiled MAE": ("tiled_mae", ".4f"),
    "inversion + regeneration (s/img)": ("reconstruction_seconds_per_image", ".3g"),
}


def sample_counts(reports: list[dict[str, Any]], prefix: str) -> list[int]:
    """The sample counts N of every `test/<prefix>_<N>` metric in the reports, ascending."""
    counts = set()
    for report in reports:
        for name in report["metrics"]:
            head, _, count = name.removeprefix("test/").rpartition("_")
            if head == prefix and count.isdigit():
                counts.add(int(count))
    return sorted(counts)


def _value(report: dict[str, Any], name: str, fmt: str) -> str:
    entry = report["metrics"].get(f"test/{name}")
    return "-" if entry is None else format(entry["value"], fmt)


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _per_count_columns(
    reports: list[dict[str, Any]], columns: dict[str, str], fmt: str
) -> tuple[list[str], list[list[str]]]:
    """Columns whose cells join the values at every sample count with '/', as in the paper."""
    present = {title: key for title, key in columns.items() if sample_counts(reports, key)}
    header: list[str] = []
    cells: list[list[str]] = [[] for _ in reports]
    for title, key in present.items():
        counts = sample_counts(reports, key)
        header.append(f"{title} ({'/'.join(map(str, counts))})")
        for row, report in zip(cells, reports, strict=True):
            row.append("/".join(_value(report, f"{key}_{count}", fmt) for count in counts))
    return header, cells


def paper_table(reports: list[dict[str, Any]]) -> str:
    """Markdown in the layout of the InvGAN paper's Table 1, one row per report."""
    header, cells = _per_count_columns(reports, FID_COLUMNS, ".2f")
    header = ["model", *header, "MAE ±1", "run time (s/img)"]
    rows = [
        [
            report["label"],
            *row,
            _value(report, "mae", ".4f"),
            _value(report, "inversion_seconds_per_image", ".2e"),
        ]
        for report, row in zip(reports, cells, strict=True)
    ]
    return _markdown(header, rows)


def other_metrics_table(reports: list[dict[str, Any]]) -> str | None:
    """Markdown of the reconstruction metrics beyond MAE and the KIDs, or None if there are
    none."""
    present = {
        title: spec
        for title, spec in RECONSTRUCTION_COLUMNS.items()
        if any(f"test/{spec[0]}" in report["metrics"] for report in reports)
    }
    kid_header, kid_cells = _per_count_columns(reports, KID_COLUMNS, ".4f")
    if not present and not kid_header:
        return None
    header = ["model", *present, *kid_header]
    rows = [
        [report["label"], *(_value(report, key, fmt) for key, fmt in present.values()), *kids]
        for report, kids in zip(reports, kid_cells, strict=True)
    ]
    return _markdown(header, rows)


def protocol_notes(reports: list[dict[str, Any]]) -> list[str]:
    """One line per distinct metric protocol, so every number carries how it was measured."""
    return sorted(
        {
            f"`{name}`: {entry['protocol']}"
            for report in reports
            for name, entry in report["metrics"].items()
        }
    )


def markdown_report(reports: list[dict[str, Any]]) -> str:
    """The tables and the protocol of every number, as one Markdown document."""
    parts = ["# Evaluation", "", paper_table(reports), ""]
    other = other_metrics_table(reports)
    if other is not None:
        parts += [other, ""]
    parts += ["## Sources", ""]
    parts += [
        f"- **{report['label']}**: `{report['source']}` (iteration {report['iteration']}), "
        f"inversion `{report['inversion_method']}`, {report['device']} x{report['processes']}, "
        f"torch {report['torch_version']}"
        for report in reports
    ]
    parts += ["", "## Protocols", ""]
    parts += [f"- {note}" for note in protocol_notes(reports)]
    return "\n".join(parts) + "\n"


def format_table(metrics: dict[str, Any]) -> str:
    """A plain-text table for the console: metric, value, sample count."""
    rows = [("metric", "value", "count")]
    for name, entry in metrics.items():
        rows.append((name, f"{entry['value']:.6g}", str(entry.get("count", ""))))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )
