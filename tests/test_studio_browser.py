"""The studio tested as a user meets it: `python -m invgan.studio` on localhost driven by a
headless Chromium (Debian's chromium + chromium-driver, through Selenium). A real face is
uploaded and inverted, a slider moved, and the picture that comes back must be the one the
shown `python -m invgan.apply` command writes; a non-image upload gets a message; a long
optimisation neither holds up an edit nor outlives Cancel."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from invgan.cli.apply import apply
from invgan.studio.browser import StudioBrowser, StudioProcess, browser_problem, free_port
from invgan.studio.display import enlargement, grid_cells, shrink
from invgan.studio.settings import DirectionEdit
from tests.conftest import LPIPS_WEIGHTS, REPO_ROOT, SHARED_DATA, compose_config

pytestmark = pytest.mark.skipif(browser_problem() is not None, reason=str(browser_problem()))

FACE = sorted((SHARED_DATA / "faces").glob("*.jpg"))[0]
RESOLUTION = 16  # the face generator's


@pytest.fixture(scope="module")
def studio_url(
    face_generator_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The studio on a free localhost port: the encoder, and an optimisation so long that it
    only ends when cancelled."""
    run_dir = tmp_path_factory.mktemp("studio_run")
    overrides = [
        f"ckpt_path={face_generator_checkpoint}",
        "device=cpu",
        f"server.port={free_port()}",
        f"hydra.run.dir={run_dir}",
        "methods.hybrid=null",
        "methods.optimization.steps=1000000",
        "+methods.optimization.lpips_weight=0",
        "directions.sefa.num_components=3",
        f"lpips.weights_path={LPIPS_WEIGHTS['alex']}",
        f"examples.folder={SHARED_DATA / 'faces'}",
        "examples.count=4",
        "upload.max_mb=1",
    ]
    environment = {"GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("gradio"))}
    with StudioProcess(overrides, REPO_ROOT, environment) as studio:
        yield studio.url


@pytest.fixture(scope="module")
def browser() -> Iterator[StudioBrowser]:
    """One headless Chromium for the module's tests."""
    driver = StudioBrowser(timeout=60)
    yield driver
    driver.close()


def test_uploaded_face_edited_by_a_slider_matches_the_apply_command(
    studio_url: str, browser: StudioBrowser, tmp_path: Path
) -> None:
    browser.open(studio_url)
    browser.upload(FACE)
    browser.wait(lambda: browser.image_source("aligned"), "the aligned face")
    browser.choose_methods(["encoder"])
    browser.click("invert")
    table = browser.wait_text("#comparison", "LPIPS")
    assert "encoder" in table and "MAE" in table
    reconstruction = browser.picture("rec-encoder")
    strength = browser.move_slider("direction-0", 0.9)
    assert strength > 1.0
    browser.wait_new_picture("result", None)
    browser.wait_text("#status", "Done: attribute_editing")
    factor = enlargement(RESOLUTION, 256)
    edited = shrink(browser.picture("result"), factor)
    assert edited.size == (RESOLUTION, RESOLUTION)
    # The slider changed the image ...
    difference = np.abs(
        np.asarray(edited, dtype=np.int16) - np.asarray(shrink(reconstruction, factor), np.int16)
    )
    assert difference.max() > 10
    # ... into exactly what the command shown beside it writes.
    words = shlex.split(browser.command())
    assert words[:3] == ["python", "-m", "invgan.apply"]
    apply(compose_config("apply", words[3:], tmp_path))
    expected = grid_cells(tmp_path / DirectionEdit((0.0,)).result_grid(), RESOLUTION, [1])[0]
    assert np.array_equal(np.asarray(edited), np.asarray(expected.convert("RGB")))
    downloads = browser.text("#downloads").replace("\n", "")  # names shown in two parts
    for name in ("result.png", "code.pt", "settings.yaml", "directions.pt"):
        assert name in downloads


def test_non_image_and_oversized_uploads_are_refused_with_a_message(
    studio_url: str, browser: StudioBrowser, tmp_path: Path
) -> None:
    browser.open(studio_url)
    notes = tmp_path / "notes.txt"
    notes.write_text("a text file, not a face\n")
    browser.upload(notes)
    message = browser.wait_text("body", "is not an image the studio can read")
    assert "notes.txt" in message and "upload a PNG, JPEG, BMP or WebP image" in message
    # Noise does not compress: a 1.7 MB PNG, over the server's upload.max_mb=1.
    noise = np.random.default_rng(0).integers(0, 256, (760, 760, 3), dtype=np.uint8)
    big = tmp_path / "big.png"
    Image.fromarray(noise).save(big)
    assert big.stat().st_size > 2**20
    browser.upload(big)
    message = browser.wait_text("body", "exceed the maximum allowed size")
    assert "big.png" in message
    assert browser.image_source("aligned") is None  # neither upload was taken


def test_a_long_optimisation_blocks_no_edit_and_stops_on_cancel(
    studio_url: str, browser: StudioBrowser
) -> None:
    browser.open(studio_url)
    browser.upload(FACE)
    browser.wait(lambda: browser.image_source("aligned"), "the aligned face")
    browser.choose_methods(["optimization"])
    browser.click("invert")
    browser.wait_text("body", "inverting with optimization")
    # The edit (encoder codes) is answered while the optimisation keeps running.
    browser.move_slider("direction-1", 0.1)
    browser.wait_new_picture("result", None)
    browser.wait_text("#status", "Done: attribute_editing")
    assert "inverting with optimization" in browser.text()
    browser.click("cancel")
    status = browser.wait_text("#status", "Cancelled", timeout=30)
    assert "optimisation steps" in status


def test_inpainting_refills_the_box_around_a_drawn_stroke(
    studio_url: str, browser: StudioBrowser
) -> None:
    browser.open(studio_url)
    browser.upload(FACE)
    browser.wait(lambda: browser.image_source("aligned"), "the aligned face")
    browser.open_tab("Inpainting")
    browser.draw("editor", [(0.35, 0.3), (0.6, 0.35), (0.55, 0.55)])
    browser.click("inpaint")
    browser.wait_text("#status", "Done: inpainting")
    box = re.search(r"application\.box=\[(\d+),(\d+),(\d+),(\d+)\]", browser.command())
    top, left, height, width = (int(v) for v in box.groups())
    assert 0 < height < RESOLUTION and 0 < width < RESOLUTION
    factor = enlargement(RESOLUTION, 256)
    repaired = np.asarray(shrink(browser.picture("result"), factor), dtype=np.int16)
    original = np.asarray(shrink(browser.picture("aligned"), factor), dtype=np.int16)
    hole = np.zeros((RESOLUTION, RESOLUTION), dtype=bool)
    hole[top : top + height, left : left + width] = True
    assert np.array_equal(repaired[~hole], original[~hole])  # known pixels kept
    assert np.abs(repaired[hole] - original[hole]).max() > 10  # the hole refilled
