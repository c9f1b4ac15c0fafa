"""The editing studio's logic without the web page: uploads, the method comparison, edits run
through the apply command's applications and matching that command's output, progress and
cancellation of optimisation, and the pieces (settings, directions, code cache, mask boxes)
checked against hand-computed values."""

from __future__ import annotations

import shlex
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from PIL import Image

from invgan.applications.style_mixing import check_layer_range, mix_layer_range
from invgan.cli.apply import apply
from invgan.image_inputs import load_images
from invgan.studio.cached_inversion import CachedInversion
from invgan.studio.directions import Slider, combine
from invgan.studio.display import grid_cells, to_picture
from invgan.studio.progress import CancelFlags, InversionCancelled, watch_steps
from invgan.studio.settings import (
    DirectionEdit,
    InpaintingEdit,
    InterpolationEdit,
    MethodChoice,
    StyleMixingEdit,
    hydra_literal,
)
from invgan.studio.studio import (
    Studio,
    UploadError,
    UploadLimits,
    build_methods,
    build_studio,
)
from invgan.studio.ui import mask_box
from tests.conftest import LPIPS_WEIGHTS, SHARED_DATA, compose_config

FACES = sorted((SHARED_DATA / "faces").glob("*.jpg"))
OPTIMIZATION_STEPS = 12


def studio_overrides(checkpoint: Path) -> list[str]:
    """A CPU studio on the face generator: the encoder and a short optimisation."""
    return [
        f"ckpt_path={checkpoint}",
        "device=cpu",
        "methods.hybrid=null",
        f"methods.optimization.steps={OPTIMIZATION_STEPS}",
        "+methods.optimization.lpips_weight=0",
        f"lpips.weights_path={LPIPS_WEIGHTS['alex']}",
        "directions.sefa.num_components=3",
    ]


@pytest.fixture(scope="module")
def studio(face_generator_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Studio:
    """The studio as `python -m invgan.studio` builds it, its folder in a temporary dir."""
    workdir = tmp_path_factory.mktemp("studio")
    cfg = compose_config("studio", studio_overrides(face_generator_checkpoint), workdir)
    return build_studio(cfg, workdir)


@pytest.fixture(scope="module")
def faces(studio: Studio) -> list[Path]:
    """Two real faces, aligned by the studio."""
    return [studio.align(FACES[0]), studio.align(FACES[1])]


def pixels(picture: Image.Image) -> np.ndarray:
    """A picture's 8-bit RGB values as integers."""
    return np.asarray(picture.convert("RGB"), dtype=np.int16)


def run_command(command: str, output_dir: Path) -> None:
    """Run a `python -m invgan.apply ...` command line in-process, as the CLI parses it."""
    words = shlex.split(command)
    assert words[:3] == ["python", "-m", "invgan.apply"]
    apply(compose_config("apply", words[3:], output_dir))


# ------------------------------------------------------------------ inputs
def test_align_equals_what_the_apply_command_reads(studio: Studio, faces: list[Path]) -> None:
    """The aligned PNG holds exactly the tensor apply makes from the original upload."""
    assert Image.open(faces[0]).size == (studio.resolution, studio.resolution)
    torch.testing.assert_close(
        load_images(faces[0], 3, studio.resolution),
        load_images(FACES[0], 3, studio.resolution),
        rtol=0,
        atol=0,
    )
    assert studio.align(FACES[0]) == faces[0]  # named by content: the same file again


def test_uploads_that_are_not_images_or_too_large_are_refused(
    studio: Studio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = set((studio.workdir / "inputs").iterdir())
    text = tmp_path / "face.png"  # an image's name, not an image's content
    text.write_text("not an image\n")
    with pytest.raises(UploadError, match="face.png is not an image the studio can read"):
        studio.align(text)
    big = tmp_path / "big.jpg"
    big.write_bytes(FACES[0].read_bytes())
    small = UploadLimits(100, studio.upload.image)
    monkeypatch.setattr(studio, "upload", small)
    with pytest.raises(UploadError, match=r"more than the studio accepts \(upload.max_mb="):
        studio.align(big)
    few_pixels = UploadLimits(2**20, type(studio.upload.image)(100, 10.0, "upload"))
    monkeypatch.setattr(studio, "upload", few_pixels)
    with pytest.raises(UploadError, match="upload.max_image_pixels=100"):
        studio.align(big)
    assert set((studio.workdir / "inputs").iterdir()) == kept  # nothing refused was stored


# ------------------------------------------------------------------ comparison
def test_compare_gives_each_methods_errors_and_seconds(studio: Studio, faces: list[Path]) -> None:
    results = studio.compare(faces[0], ["encoder", "optimization", "hybrid"])
    by_name = {result.method: result for result in results}
    assert "not configured" in by_name["hybrid"].problem
    image = load_images(faces[0], 3, studio.resolution)
    for name in ("encoder", "optimization"):
        result = by_name[name]
        shown = np.asarray(result.picture)[:: studio.factor, :: studio.factor] / 127.5 - 1
        difference = np.abs(image[0].permute(1, 2, 0).numpy() - shown)
        assert result.mae == pytest.approx(difference.mean(), abs=0.01)  # shown image: 8 bits
        assert result.lpips is not None and 0 < result.lpips < 1
        assert result.seconds is not None and result.seconds >= 0
        # White is an error of 0.5: gain 4 on the channel mean of |x - x_rec| / 2 (from the
        # unclamped reconstruction, hence a mean check against the shown one).
        errors = np.asarray(result.errors)[:: studio.factor, :: studio.factor, 0] / 255
        expected = np.clip(4 * difference.mean(axis=2) / 2, 0, 1)
        assert np.abs(errors - expected).mean() < 0.03


def test_a_method_that_would_download_weights_is_unavailable_with_the_fix(
    studio: Studio,
) -> None:
    choice = MethodChoice("optimization", ("inversion.lpips.weights_path=null",))
    entry = build_methods(studio.model, {"optimization": choice}, seed=0)["optimization"]
    assert entry.method is None
    assert "no local weights and the studio does not download" in entry.problem
    assert "+methods.optimization.lpips_weight=0" in entry.problem


# ------------------------------------------------------------------ edits = the apply command
@pytest.mark.parametrize(
    "edit",
    [
        DirectionEdit((2.0, 0.0, -1.0)),
        StyleMixingEdit(1, 4),
        InterpolationEdit(4),
        InpaintingEdit((3, 4, 5, 6)),
    ],
    ids=lambda edit: edit.application,
)
def test_edit_matches_its_apply_command(
    studio: Studio, faces: list[Path], tmp_path: Path, edit: Any
) -> None:
    images = faces[: edit.image_count]
    result = studio.edit(edit, "encoder", images)
    saved = yaml.safe_load((result.settings.folder / "settings.yaml").read_text())
    assert saved["command"] == result.settings.command()
    run_command(saved["command"], tmp_path / "apply")
    grid = tmp_path / "apply" / edit.result_grid()
    columns = [c + 1 for c in range(len(result.pictures))]
    if isinstance(edit, InpaintingEdit):
        columns = [3]  # original, damaged, repaired, composite: the encoder has no masked column
    expected = grid_cells(grid, studio.resolution, columns)
    # One image: the same computation, bit for bit. Pairs: apply inverts both images in one
    # batch where the studio kept the first one's code from a batch of one, which a CPU
    # kernel may round differently (one 8-bit level at most).
    tolerance = 0 if edit.image_count == 1 else 1
    for shown, reference in zip(result.pictures, expected, strict=True):
        assert np.abs(pixels(shown) - pixels(reference)).max() <= tolerance
    # The code downloaded decodes to the result.
    code = torch.load(result.settings.folder / "code.pt", weights_only=True)["codes"]
    decoded = studio.generator.synthesize(code)
    if not isinstance(edit, InpaintingEdit):  # there the composite keeps the known pixels
        for picture, image in zip(result.pictures, decoded, strict=True):
            assert np.abs(pixels(picture) - pixels(to_picture(image))).max() <= 1


def test_direction_edit_changes_the_image_and_is_the_sum_of_moves(
    studio: Studio, faces: list[Path]
) -> None:
    still = studio.edit(DirectionEdit((0.0, 0.0, 0.0)), "encoder", faces[:1])
    moved = studio.edit(DirectionEdit((2.5, 0.0, 0.0)), "encoder", faces[:1])
    assert np.abs(pixels(moved.pictures[0]) - pixels(still.pictures[0])).max() > 10
    with torch.no_grad():
        codes = studio.methods["encoder"].method.encode(studio.images(faces[:1]))
    slider = studio.sliders[0]
    expected = studio.generator.expand_to_codes(codes) + 2.5 * slider.spread * slider.vector
    code = torch.load(moved.settings.folder / "code.pt", weights_only=True)["codes"]
    torch.testing.assert_close(studio.generator.expand_to_codes(code), expected)
    saved = yaml.safe_load((moved.settings.folder / "settings.yaml").read_text())
    assert saved["directions"] == {
        "component_0 (SeFa)": 2.5,
        "component_1 (SeFa)": 0.0,
        "component_2 (SeFa)": 0.0,
    }


def test_style_mixing_takes_the_layer_range_from_the_second_image(
    studio: Studio, faces: list[Path]
) -> None:
    result = studio.edit(StyleMixingEdit(2, 5), "encoder", faces)
    with torch.no_grad():
        codes = studio.generator.expand_to_codes(
            studio.methods["encoder"].method.encode(studio.images(faces))
        )
    mixed = torch.load(result.settings.folder / "code.pt", weights_only=True)["codes"][0]
    torch.testing.assert_close(mixed[2:5], codes[1, 2:5])
    torch.testing.assert_close(mixed[:2], codes[0, :2])
    torch.testing.assert_close(mixed[5:], codes[0, 5:])
    with pytest.raises(ValueError, match="0 <= start < end <= 6"):
        studio.edit(StyleMixingEdit(4, 4), "encoder", faces)
    with pytest.raises(ValueError, match="needs an image and a second image"):
        studio.edit(StyleMixingEdit(0, 2), "encoder", faces[:1])


def test_mix_layer_range_hand_computed() -> None:
    target, source = torch.zeros(1, 4, 2), torch.ones(1, 4, 2)
    mixed = mix_layer_range(target, source, 1, 3)
    assert mixed[0, :, 0].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert check_layer_range([0, 4], 4) == (0, 4)
    for bad in ([2, 1], [0, 5], [-1, 2], [1]):
        with pytest.raises(ValueError, match="application.layers"):
            check_layer_range(bad, 4)


# ------------------------------------------------------------------ progress and cancel
def test_cancel_stops_the_optimisation_at_the_next_step(studio: Studio, faces: list[Path]) -> None:
    image = studio.align(FACES[2])  # not inverted yet by any test
    cancel = threading.Event()
    seen = []

    def report(done: int, total: int | None, what: str) -> None:
        seen.append((done, total, what))
        if done == 3:
            cancel.set()

    with pytest.raises(InversionCancelled, match="after 4 optimisation steps"):
        studio.compare(image, ["optimization"], report, cancel)
    assert seen == [(k, OPTIMIZATION_STEPS, "inverting with optimization") for k in (1, 2, 3)]
    method = studio.methods["optimization"].method
    assert not method.cached(studio.images([image]))  # nothing half-done was kept
    seen.clear()
    studio.compare(image, ["optimization"], report, threading.Event())
    assert [done for done, _, _ in seen] == list(range(1, OPTIMIZATION_STEPS + 1))


def test_step_watch_sees_only_its_own_thread() -> None:
    parameter = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    seen = []
    with watch_steps(lambda done, total: seen.append(done), threading.Event(), 5):
        other = threading.Thread(target=optimizer.step)
        other.start()
        other.join()
        assert seen == []
        optimizer.step()
        assert seen == [1]
    optimizer.step()
    assert seen == [1]


def test_cancel_flags_reach_only_the_sessions_running_requests() -> None:
    flags = CancelFlags()
    assert flags.cancel("a") == 0  # nothing running: nothing to remember
    with flags.running("a") as first, flags.running("a") as second, flags.running("b") as other:
        assert flags.cancel("a") == 2
        assert first.is_set() and second.is_set() and not other.is_set()
        with flags.running("a") as later:
            assert not later.is_set()  # a request started after a cancel runs
    assert flags.cancel("a") == 0 and flags.cancel("b") == 0


# ------------------------------------------------------------------ pieces
@pytest.mark.parametrize(
    "value",
    ["/tmp/a b/c.png", "/tmp/a,b", "it's", "null", "12", "plain", 3, 0.1, True, None, [1.0, 2]],
)
def test_hydra_literal_parses_back(value: Any) -> None:
    parsed = OverridesParser.create().parse_overrides([f"key={hydra_literal(value)}"])[0]
    assert parsed.value() == value


def test_method_choice_options_become_inversion_overrides() -> None:
    choice = MethodChoice.from_options("optimization", {"steps": 5, "lpips": {"net": "alex"}})
    assert choice.apply_overrides() == [
        "inversion=optimization",
        "inversion.steps=5",
        "inversion.lpips.net=alex",
    ]
    with pytest.raises(ValueError, match="methods.hybrid may only set the method's own options"):
        MethodChoice("hybrid", ("seed=3",))


def test_combined_direction_is_the_weighted_sum() -> None:
    generator = SimpleNamespace(n_latent=3)
    first = Slider("a", torch.tensor([1.0, 0.0]), [0, 1], spread=2.0)
    second = Slider("b", torch.tensor([0.0, 1.0]), [0, 1], spread=0.5)
    shared = combine([first, second], [1.5, -2.0], generator, "edit")
    assert shared.layers == [0, 1] and shared.vectors.tolist() == [[3.0, -1.0]]
    everywhere = Slider("c", torch.tensor([1.0, 1.0]), None, spread=1.0)
    mixed = combine([first, everywhere], [1.0, 1.0], generator, "edit")
    assert mixed.layers is None
    assert mixed.vectors[0].tolist() == [[3.0, 1.0], [3.0, 1.0], [1.0, 1.0]]


def test_cached_inversion_inverts_each_image_once() -> None:
    encoded = []

    def encode(images: torch.Tensor) -> torch.Tensor:
        encoded.append(images.shape[0])
        return images.flatten(1).sum(dim=1, keepdim=True)

    method = SimpleNamespace(
        encode=encode,
        decode=lambda codes: codes,
        model=SimpleNamespace(frozen_generator=lambda: "generator"),
        frozen_generator=lambda: "generator",
    )
    cached = CachedInversion(method, capacity=2)
    a, b, c = torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 2.0)
    assert cached.encode(torch.cat([a, b])).flatten().tolist() == [4.0, 0.0]
    assert cached.encode(torch.cat([b, c])).flatten().tolist() == [0.0, 8.0]
    assert encoded == [2, 1]  # b came from the cache
    cached.encode(a)  # a was evicted (capacity 2): inverted again
    assert encoded == [2, 1, 1] and cached.generator == "generator"


def test_mask_box_is_the_box_around_the_drawing_in_generator_pixels() -> None:
    layer = np.zeros((64, 64, 4), dtype=np.uint8)
    layer[8:14, 20:28, 3] = 255  # factor 4 on a 16-px generator
    assert mask_box([layer], 16) == (2, 5, 2, 2)
    with pytest.raises(ValueError, match="draw over the part"):
        mask_box([np.zeros((64, 64, 4), dtype=np.uint8)], 16)
    with pytest.raises(ValueError, match="draw over the part"):
        mask_box([], 16)


def test_a_bare_generator_file_edits_without_a_command(
    face_generator_checkpoint: Path, tmp_path: Path
) -> None:
    """generator_path: no encoder (its comparison row says so), optimisation edits work, and
    no apply command is offered (apply loads run checkpoints only)."""
    overrides = [
        f"generator_path={face_generator_checkpoint}",
        "data=celeba",
        "data.resolution=16",
        "device=cpu",
        "methods.hybrid=null",
        "methods.optimization.steps=3",
        "+methods.optimization.lpips_weight=0",
        "directions.sefa.num_components=2",
        f"lpips.weights_path={LPIPS_WEIGHTS['alex']}",
    ]
    studio = build_studio(compose_config("studio", overrides, tmp_path), tmp_path)
    face = studio.align(FACES[0])
    results = {r.method: r for r in studio.compare(face, ["encoder", "optimization"])}
    assert "has no encoder" in results["encoder"].problem
    assert results["optimization"].problem is None
    result = studio.edit(DirectionEdit((1.0, 0.0)), "optimization", [face])
    assert result.settings.command() is None
    saved = yaml.safe_load((result.settings.folder / "settings.yaml").read_text())
    assert saved["command"].startswith("none: the apply command loads run checkpoints")
