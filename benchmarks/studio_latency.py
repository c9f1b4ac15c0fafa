"""Start-up time and per-edit latency of the editing studio as a user meets them: the studio in
its own process (`python -m invgan.studio`), a headless Chromium on its page (Selenium,
Debian's chromium + chromium-driver), and the wall-clock time of each step from the user's
action to the picture that answers it. The studio's own compute time of each edit (shown on
the page's status line) is reported beside it, so that the browser and transfer overhead is
the difference. Usage (any studio overrides after the options):

    python benchmarks/studio_latency.py [--edits 10] [--screenshots docs/images/studio] \
        ckpt_path=<run>/checkpoints/last.ckpt [device=cpu methods.optimization.steps=100 ...]

Prints a Markdown table. With --screenshots, saves the page after the inversion
(overview.png) and the edit area after each kind of edit there (directions, style_mixing,
interpolation, inpainting).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from invgan.studio.browser import StudioBrowser, StudioProcess, browser_problem, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_FACES = REPO_ROOT.parent / "shared" / "data" / "faces"
SERVER_SECONDS = re.compile(r"Done: \w+ in ([0-9.]+) s")


def server_seconds(browser: StudioBrowser) -> float:
    """The studio's own seconds for the last edit, from the status line."""
    return float(SERVER_SECONDS.search(browser.text("#status")).group(1))


def timed(action: Callable[[], Any], wait: Callable[[], Any]) -> float:
    """Seconds from `action()` to `wait()` returning."""
    start = time.perf_counter()
    action()
    wait()
    return time.perf_counter() - start


def edit_and_wait(browser: StudioBrowser, action: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, studio seconds) of an edit started by `action`."""
    old = browser.image_source("result")
    seconds = timed(action, lambda: browser.wait_new_picture("result", old, timeout=300))
    browser.wait_text("#status", "Done:")
    return seconds, server_seconds(browser)


def main() -> None:
    """Run the measurements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=10, help="slider moves timed")
    parser.add_argument("--screenshots", type=Path, default=None, help="folder for PNGs")
    parser.add_argument("--face", type=Path, default=SHARED_FACES / "182638.jpg")
    parser.add_argument("--second", type=Path, default=SHARED_FACES / "182697.jpg")
    parser.add_argument("--run-dir", type=Path, default=None, help="the studio's run folder")
    args, overrides = parser.parse_known_args()
    problem = browser_problem()
    if problem is not None:
        raise SystemExit(problem)
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="studio_latency_"))
    overrides = [*overrides, f"server.port={free_port()}", f"hydra.run.dir={run_dir}"]
    rows: list[tuple[str, str]] = []
    shots = args.screenshots

    def shot(name: str, elem_id: str | None = None) -> None:
        if shots is not None:
            browser.screenshot(shots / f"{name}.png", elem_id)

    with StudioProcess(overrides, REPO_ROOT) as studio:
        rows.append(
            ("start-up: process start to the page answering", f"{studio.startup_seconds:.1f}")
        )
        browser = StudioBrowser(timeout=300)
        try:
            rows.append(
                (
                    "page load in the browser",
                    f"{timed(lambda: browser.open(studio.url), lambda: None):.2f}",
                )
            )
            seconds = timed(
                lambda: browser.upload(args.face),
                lambda: browser.wait(lambda: browser.image_source("aligned"), "the aligned face"),
            )
            rows.append(("upload and align a face", f"{seconds:.2f}"))
            seconds = timed(
                lambda: browser.click("invert"),
                lambda: browser.wait_text("#comparison", "LPIPS", timeout=600),
            )
            rows.append(("invert with every configured method (click to table)", f"{seconds:.2f}"))
            for line in browser.text("#comparison").splitlines():
                parts = line.split()
                if len(parts) == 4 and parts[0] not in ("method",):
                    rows.append((f"  {parts[0]}: server seconds of the inversion", parts[3]))
            browser.driver.execute_script("window.scrollTo(0, 0);")
            shot("overview")
            walls, computes = [], []
            for k in range(args.edits):
                fraction = 0.85 if k % 2 == 0 else 0.15
                wall, compute = edit_and_wait(
                    browser, lambda f=fraction: browser.move_slider("direction-0", f)
                )
                walls.append(wall)
                computes.append(compute)
            rows.append(
                (
                    f"direction slider: release to new picture (median of {len(walls)}; min-max)",
                    f"{statistics.median(walls):.2f} ({min(walls):.2f}-{max(walls):.2f})",
                )
            )
            rows.append(
                ("  of which the studio's compute (median)", f"{statistics.median(computes):.2f}")
            )
            shot("directions", "edit-area")
            browser.open_accordion("Second image")
            browser.upload(args.second, "second-upload")
            browser.wait(lambda: browser.image_source("second"), "the second face")
            browser.open_tab("Style mixing")
            wall, compute = edit_and_wait(browser, lambda: browser.click("mix"))
            rows.append(
                ("style mixing: click to picture (studio compute)", f"{wall:.2f} ({compute:.2f})")
            )
            shot("style_mixing", "edit-area")
            browser.open_tab("Interpolation")
            wall, compute = edit_and_wait(browser, lambda: browser.click("interpolate"))
            rows.append(
                (
                    "interpolation, 8 steps + GIF: click to picture (studio compute)",
                    f"{wall:.2f} ({compute:.2f})",
                )
            )
            shot("interpolation", "edit-area")
            browser.open_tab("Inpainting")
            browser.draw("editor", [(0.35, 0.3), (0.6, 0.35), (0.55, 0.55)])
            wall, compute = edit_and_wait(browser, lambda: browser.click("inpaint"))
            rows.append(
                ("inpainting: click to picture (studio compute)", f"{wall:.2f} ({compute:.2f})")
            )
            shot("inpainting", "edit-area")
        finally:
            browser.close()
    cpu = f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}"
    print(f"Studio latency ({cpu}; overrides: {' '.join(overrides[:-2])})\n")
    print("| step | seconds |\n| --- | --- |")
    for what, value in rows:
        print(f"| {what} | {value} |")


if __name__ == "__main__":
    main()
