"""Editing applications on inverted codes (interpolation, style mixing, inpainting with masked
inversion, merging) with a tiny StyleGAN2 InvGAN trained two steps on synthetic images, checked
against hand-computed values and properties that a wrong implementation would break."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import hydra
import pytest
import torch
from PIL import Image

from invgan.applications.editing import pairs
from invgan.applications.inpainting import hole_masks
from invgan.applications.interpolation import interpolate, lerp, slerp
from invgan.applications.merging import compose_halves
from invgan.applications.style_mixing import mix_first_styles, style_mixing
from invgan.checkpoints.format import load_checkpoint
from invgan.checkpoints.run_config import restore_run_config
from invgan.cli.apply import apply
from invgan.evaluation.loading import build_model
from invgan.image_inputs import load_images
from invgan.inversion.optimization import known_pixels
from invgan.training.pipeline import train
from tests.conftest import CPU_RUN, LPIPS_WEIGHTS, SHARED_DATA, TINY_MODELS, compose_config

RESOLUTION = 16


@pytest.fixture(scope="module")
def stylegan_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """last.ckpt of a two-step InvGAN StyleGAN2 run on 16-px synthetic RGB images."""
    run_dir = tmp_path_factory.mktemp("stylegan")
    overrides = [
        *CPU_RUN,
        "model=invgan_stylegan2",
        *TINY_MODELS["StyleGAN2Generator"],
        "data=synthetic",
        f"data.resolution={RESOLUTION}",
        "data.channels=3",
        "debug=fdr",
        "trainer.fast_dev_run=false",
        "trainer.max_steps=2",
        "trainer.limit_val_batches=1",
        "test=false",
    ]
    train(compose_config("train", overrides, run_dir))
    return run_dir / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def model(stylegan_checkpoint: Path) -> Any:
    """The InvGAN as the apply command builds it."""
    cfg = compose_config(
        "apply",
        [f"ckpt_path={stylegan_checkpoint}", "inputs=unused", "device=cpu"],
        Path("unused"),
    )
    checkpoint = load_checkpoint(stylegan_checkpoint)
    return build_model(restore_run_config(checkpoint, cfg), checkpoint, cfg)


def method(model: Any, name: str, *overrides: str) -> Any:
    """conf/inversion/<name>.yaml with overrides, instantiated as the apply command does."""
    cfg = compose_config("apply", [f"inversion={name}", *overrides], Path("unused"))
    return hydra.utils.instantiate(cfg.inversion, model=model)


@pytest.fixture(scope="module")
def face_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding (links to) four real faces: two pairs."""
    folder = tmp_path_factory.mktemp("faces")
    for face in sorted((SHARED_DATA / "faces").glob("*.jpg"))[:4]:
        (folder / face.name).symlink_to(face)
    return folder


@pytest.fixture(scope="module")
def faces(face_folder: Path) -> torch.Tensor:
    """The four faces at 16 px in [-1, 1], as the apply command reads them."""
    return load_images(face_folder, 3, RESOLUTION)


# ------------------------------------------------------------------ interpolation
def test_lerp_and_slerp_hand_computed() -> None:
    t = torch.tensor([0.0, 1 / 3, 1.0])
    # Quarter circle of radius 2: a third of the way is at 30 degrees.
    expected = torch.tensor([[[2.0, 0.0], [math.sqrt(3.0), 1.0], [0.0, 2.0]]])
    torch.testing.assert_close(
        slerp(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 2.0]]), t), expected
    )
    torch.testing.assert_close(
        lerp(torch.tensor([[0.0, 3.0]]), torch.tensor([[3.0, 0.0]]), t),
        torch.tensor([[[0.0, 3.0], [1.0, 2.0], [3.0, 0.0]]]),
    )


def test_slerp_keeps_equal_norms_and_ends_exactly_at_its_endpoints() -> None:
    rng = torch.Generator().manual_seed(0)
    start, end = torch.randn(2, 5, 32, generator=rng)
    start = 3 * start / start.norm(dim=1, keepdim=True)
    end = 3 * end / end.norm(dim=1, keepdim=True)
    t = torch.linspace(0, 1, 9)
    path = slerp(start, end, t)
    torch.testing.assert_close(path.norm(dim=2), torch.full((5, 9), 3.0))
    assert torch.equal(path[:, 0], start) and torch.equal(path[:, -1], end)
    # lerp cuts the chord, inside the sphere: the two paths really differ.
    assert (lerp(start, end, t)[:, 4].norm(dim=1) < 2.9).all()
    # Parallel vectors have no great circle: the fallback is the straight line.
    torch.testing.assert_close(slerp(start, 2 * start, t), lerp(start, 2 * start, t))


def test_w_interpolation_ends_at_the_two_reconstructions(model: Any, faces: torch.Tensor) -> None:
    encoder = method(model, "encoder")
    frames, saved = interpolate(encoder, faces, steps=5)
    assert frames.shape == (2, 5, 3, RESOLUTION, RESOLUTION)
    with torch.no_grad():
        reconstructions = encoder.reconstruct(faces)
    first, second = pairs(reconstructions)
    torch.testing.assert_close(frames[:, 0], first, atol=1e-5, rtol=0)
    torch.testing.assert_close(frames[:, -1], second, atol=1e-5, rtol=0)
    codes = encoder.encode(faces)
    torch.testing.assert_close(saved["codes"][:, 2], (codes[0::2] + codes[1::2]) / 2)
    assert (frames[:, 2] - first).abs().max() > 1e-3  # the middle is neither end


def test_z_interpolation_slerps_the_optimised_z(model: Any, faces: torch.Tensor) -> None:
    in_z = method(
        model,
        "optimization",
        "inversion.space=z",
        "inversion.steps=10",
        "inversion.lpips_weight=0",
        "inversion.optimize_noise=false",
    )
    frames, saved = interpolate(in_z, faces, steps=4, space="z")
    inversion = in_z.invert(faces)
    first_z, second_z = pairs(inversion.variable)
    assert torch.equal(saved["z"][:, 0], first_z) and torch.equal(saved["z"][:, -1], second_z)
    with torch.no_grad():
        first, second = pairs(in_z.decode(inversion.codes))
    torch.testing.assert_close(frames[:, 0], first, atol=1e-5, rtol=0)
    torch.testing.assert_close(frames[:, -1], second, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="inversion.space=z"):
        interpolate(method(model, "encoder"), faces, steps=4, space="z")


def test_pairs_need_an_even_number_of_images() -> None:
    first, second = pairs(torch.arange(4))
    assert first.tolist() == [0, 2] and second.tolist() == [1, 3]
    with pytest.raises(ValueError, match="even number"):
        pairs(torch.arange(3))


# ------------------------------------------------------------------ style mixing
def test_mix_first_styles_takes_k_layers_from_the_source() -> None:
    target, source = torch.zeros(1, 3, 2), torch.ones(1, 3, 2)
    mixed = mix_first_styles(target, source)
    expected = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.float32)
    assert torch.equal(mixed[0, :, :, 0], expected) and torch.equal(mixed[0, :, :, 1], expected)


def test_style_mixing_runs_from_first_to_second_reconstruction(
    model: Any, faces: torch.Tensor
) -> None:
    encoder = method(model, "encoder")
    layers = model.frozen_generator().n_latent
    images, codes = style_mixing(encoder, faces)
    assert images.shape[:2] == (2, layers + 1) and codes.shape[:3] == (2, layers + 1, layers)
    with torch.no_grad():
        first, second = pairs(encoder.reconstruct(faces))
    torch.testing.assert_close(images[:, 0], first, atol=1e-5, rtol=0)
    torch.testing.assert_close(images[:, -1], second, atol=1e-5, rtol=0)
    assert (images[:, layers // 2] - first).abs().max() > 1e-4


def test_style_mixing_refuses_a_generator_with_one_code() -> None:
    dcgan_like = SimpleNamespace(frozen_generator=lambda: SimpleNamespace(n_latent=1))
    with pytest.raises(ValueError, match="nothing to mix"):
        style_mixing(dcgan_like, torch.zeros(2, 3, 8, 8))


# ------------------------------------------------------------------ inpainting
def test_hole_masks_box_and_seeded_random_squares() -> None:
    masks = hole_masks(2, 8, box=[1, 2, 3, 4])
    expected = torch.ones(8, 8)
    expected[1:4, 2:6] = 0
    assert masks.shape == (2, 1, 8, 8) and torch.equal(masks[1, 0], expected)
    squares = hole_masks(6, 16, hole_size=5, seed=3)
    assert ((1 - squares).sum(dim=(1, 2, 3)) == 25).all()
    assert torch.equal(squares, hole_masks(6, 16, hole_size=5, seed=3))
    assert not torch.equal(squares, hole_masks(6, 16, hole_size=5, seed=4))
    with pytest.raises(ValueError, match="inside"):
        hole_masks(1, 8, box=[4, 4, 5, 2])
    with pytest.raises(ValueError, match="hole_size"):
        hole_masks(1, 8, hole_size=8)


LPIPS_ALEX = (
    "inversion.lpips.net=alex",
    f"inversion.lpips.weights_path={LPIPS_WEIGHTS['alex']}",
    "inversion.lpips.resize=32",
)


def test_masked_loss_sees_known_pixels_only(model: Any, faces: torch.Tensor) -> None:
    """Pixel term: the mean over known pixels; LPIPS: between both images times the mask."""
    inversion = method(model, "optimization", *LPIPS_ALEX)
    mask = hole_masks(4, RESOLUTION, hole_size=6, seed=0)
    variable = inversion.space.initial(4)
    with torch.no_grad():
        generated = inversion.decode(variable)
        masked = inversion.losses(known_pixels(faces, mask), variable, None, mask)
        unmasked = inversion.losses(faces, variable, None)
        all_known = inversion.losses(faces, variable, None, torch.ones_like(mask))
        perceptual = inversion.lpips(generated * mask, faces * mask)
    known = mask.bool().expand_as(faces)
    pixel = [
        (g[k] - x[k]).square().mean() for g, x, k in zip(generated, faces, known, strict=True)
    ]
    torch.testing.assert_close(masked, torch.stack(pixel) + perceptual)
    torch.testing.assert_close(all_known, unmasked)


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("optimization", ("inversion.steps=15", *LPIPS_ALEX)),
        ("domain_regularized", ("inversion.steps=10", *LPIPS_ALEX)),
    ],
)
def test_masked_inversion_ignores_unknown_pixels_only(
    model: Any, faces: torch.Tensor, name: str, overrides: tuple[str, ...]
) -> None:
    inversion = method(model, name, *overrides)
    assert inversion.lpips is not None
    images = faces[:2]
    mask = hole_masks(2, RESOLUTION, box=[4, 3, 7, 8])
    noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    new_hole = torch.where(mask > 0, images, noise)
    reference = inversion.invert(images, mask)
    same = inversion.invert(new_hole, mask)
    assert torch.equal(same.codes, reference.codes) and torch.equal(same.loss, reference.loss)
    # The mask matters: without it the hole's content moves the codes ...
    assert (inversion.invert(new_hole).codes - inversion.invert(images).codes).abs().max() > 1e-4
    # ... and so does one known pixel.
    changed = images.clone()
    changed[:, :, 0, 0] = -changed[:, :, 0, 0]
    assert (inversion.invert(changed, mask).codes - reference.codes).abs().max() > 1e-4


def test_masked_inversion_checks_the_mask(model: Any, faces: torch.Tensor) -> None:
    inversion = method(model, "optimization", "inversion.steps=1", "inversion.lpips_weight=0")
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        inversion.invert(faces, torch.ones(4, 3, RESOLUTION, RESOLUTION))
    with pytest.raises(ValueError, match="all zero"):
        inversion.invert(faces, torch.zeros(4, 1, RESOLUTION, RESOLUTION))


# ------------------------------------------------------------------ merging
def test_compose_halves_splits_at_the_configured_column() -> None:
    left = torch.arange(16.0).reshape(1, 1, 2, 8)
    right = -left
    composite = compose_halves(left, right, split=0.25)
    expected = torch.tensor(
        [[0.0, 1, -2, -3, -4, -5, -6, -7], [8, 9, -10, -11, -12, -13, -14, -15]]
    )
    assert torch.equal(composite[0, 0], expected)
    assert torch.equal(compose_halves(left, right)[..., :4], left[..., :4])
    with pytest.raises(ValueError, match="0 < split < 1"):
        compose_halves(left, right, split=1.0)


# ------------------------------------------------------------------ the apply command
def _grid_shape(rows: int, cols: int) -> tuple[int, int]:
    """(width, height) of a save_image_grid PNG of 16-px images (2-px padding)."""
    step = RESOLUTION + 2
    return cols * step + 2, rows * step + 2


@pytest.mark.parametrize(
    ("application", "overrides", "outputs", "rows", "cols"),
    [
        (
            "interpolation",
            ["application.steps=4"],
            ["interpolation.png", "interpolation_codes.pt"],
            2,
            6,
        ),
        ("style_mixing", [], ["style_mixing.png", "style_mixing_codes.pt"], 2, 9),
        (
            "inpainting",
            [
                "inversion=optimization",
                "inversion.steps=5",
                "inversion.lpips_weight=0",
                "application.hole_size=6",
            ],
            ["inpainting.png", "inpainting_codes.pt"],
            4,
            5,
        ),
        (
            "inpainting",
            ["application.box=[2,2,6,6]"],
            ["inpainting.png", "inpainting_codes.pt"],
            4,
            4,
        ),
        ("merging", ["application.split=0.375"], ["merging.png", "merging_codes.pt"], 2, 4),
    ],
)
def test_apply_editing_command_on_real_faces(
    stylegan_checkpoint: Path,
    face_folder: Path,
    tmp_path: Path,
    application: str,
    overrides: list[str],
    outputs: list[str],
    rows: int,
    cols: int,
) -> None:
    out = tmp_path / "apply"
    command = [f"application={application}", f"ckpt_path={stylegan_checkpoint}"]
    command += [f"inputs={face_folder}", "device=cpu", *overrides]
    paths = apply(compose_config("apply", command, out))
    assert sorted(p.name for p in paths) == sorted(outputs)
    with Image.open(out / outputs[0]) as grid:
        assert grid.size == _grid_shape(rows, cols)
    codes = torch.load(out / outputs[1], weights_only=True)
    assert all(not torch.is_tensor(v) or torch.isfinite(v).all() for v in codes.values())
