"""Tiled inversion and its applications (de-blurring, frame interpolation, the apply command),
checked against an exact patch autoencoder, for which each result has a closed form."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torchvision.transforms.functional import gaussian_blur

from invgan.applications.deblur import blur, latent_deblur
from invgan.applications.frame_interpolation import gaussian_window_weights, interpolate_frames
from invgan.checkpoints.format import load_checkpoint
from invgan.checkpoints.run_config import restore_run_config
from invgan.cli.apply import apply
from invgan.evaluation.loading import build_model
from invgan.evaluation.pipeline import evaluate
from invgan.inversion.tiled import invert_tiled, reconstruct_tiled
from invgan.training.pipeline import train
from invgan.utils.images import to_signed_range
from invgan.utils.instantiate import instantiate_datamodule
from tests.conftest import compose_config


class PatchAutoencoder:
    """encode = flatten the patch, decode = un-flatten: every inversion is exact."""

    def __init__(self, channels: int, patch_size: int) -> None:
        self.shape = (channels, patch_size, patch_size)

    def encode(self, patches: torch.Tensor) -> torch.Tensor:
        return patches.flatten(1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return codes.reshape(-1, *self.shape)


class PatchMean:
    """encode = the patch's mean colour, decode = a flat patch of that colour."""

    def __init__(self, patch_size: int) -> None:
        self.patch_size = patch_size

    def encode(self, patches: torch.Tensor) -> torch.Tensor:
        return patches.mean(dim=(2, 3))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return codes[:, :, None, None].expand(-1, -1, self.patch_size, self.patch_size)


def test_tiled_reconstruction_is_exact_for_an_exact_inverse_at_any_size():
    images = torch.rand(2, 3, 50, 37) * 2 - 1
    latents = invert_tiled(PatchAutoencoder(3, 16), images, 16)
    assert latents.codes.shape == (2, 4, 3, 3 * 16 * 16)
    assert torch.equal(reconstruct_tiled(PatchAutoencoder(3, 16), images, 16), images)


def test_tiled_reconstruction_places_each_patch_where_it_came_from():
    images = torch.rand(2, 1, 8, 12)
    expected = images.clone()
    for row in range(2):
        for col in range(3):
            block = expected[:, :, row * 4 : row * 4 + 4, col * 4 : col * 4 + 4]
            block[:] = block.mean(dim=(2, 3), keepdim=True)
    assert torch.allclose(reconstruct_tiled(PatchMean(4), images, 4), expected, atol=1e-6)


def test_deblur_is_unsharp_masking_for_an_exact_inverse():
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    result = latent_deblur(PatchAutoencoder(3, 16), images, 16, [0.0, 1.5], blur_sigma=1.0)
    # Independent reference: x + a * (x - G_sigma * x), torchvision's blur with a 7-px kernel.
    reference = images + 1.5 * (images - gaussian_blur(images, [7, 7], [1.0, 1.0]))
    assert torch.equal(result.outputs[0], images)
    assert torch.allclose(result.outputs[1], reference, atol=1e-5)


def test_deblur_upsamples_low_resolution_inputs_first():
    images = torch.rand(1, 3, 8, 8) * 2 - 1
    result = latent_deblur(PatchAutoencoder(3, 8), images, 8, [0.0], scale_factor=4)
    assert result.inputs.shape == (1, 3, 32, 32) and result.codes.shape[1:3] == (4, 4)
    with pytest.raises(ValueError, match="blur_sigma"):
        blur(images, 0.0)


def test_gaussian_window_weights_hand_computed():
    weights = gaussian_window_weights(num_frames=2, factor=2, sigma=0.5)
    near, far = 1.0, math.exp(-1 / (2 * 0.25))  # offsets 0 and 1 at sigma 0.5
    expected = torch.tensor(
        [
            [near / (near + far), far / (near + far)],
            [0.5, 0.5],
            [far / (near + far), near / (near + far)],
        ],
        dtype=torch.float64,
    )
    assert torch.allclose(weights, expected)
    with pytest.raises(ValueError, match="at least 2 frames"):
        gaussian_window_weights(1, 2, 0.5)


def test_frame_interpolation_keeps_frames_and_averages_midpoints():
    frames = torch.rand(3, 3, 16, 16) * 2 - 1
    output, latents = interpolate_frames(PatchAutoencoder(3, 8), frames, 8, factor=2, sigma=0.05)
    assert output.shape == (5, 3, 16, 16) and latents.codes.shape[:3] == (5, 2, 2)
    assert torch.allclose(output[::2], frames, atol=1e-6)
    assert torch.allclose(output[1], (frames[0] + frames[1]) / 2, atol=1e-6)


@pytest.fixture
def tiny_checkpoint(train_config) -> Path:
    """last.ckpt of a one-batch InvGAN run on 16-px synthetic RGB images."""
    cfg = train_config(
        "data=synthetic",
        "data.resolution=16",
        "data.channels=3",
        "debug=fdr",
        "trainer.fast_dev_run=false",
        "trainer.max_steps=2",
        "trainer.limit_val_batches=1",
        "test=false",
    )
    train(cfg)
    return Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize(
    ("application", "outputs"),
    [
        ("tiled_reconstruction", ["tiled_reconstruction.png", "tiled_codes.pt", "tiled_mae.json"]),
        ("deblur", ["deblur.png", "deblur_codes.pt"]),
        ("frame_interpolation", ["frame_interpolation.png", "frame_codes.pt", "frames"]),
    ],
)
def test_apply_command_on_real_photos(application, outputs, tiny_checkpoint, tmp_path):
    photos = sorted((Path(__file__).parents[2] / "shared" / "data" / "natural").glob("*.JPEG"))
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for photo in photos[:3]:
        (inputs / photo.name).symlink_to(photo)
    out = tmp_path / "apply"
    cfg = compose_config(
        "apply",
        [
            f"application={application}",
            f"ckpt_path={tiny_checkpoint}",
            f"inputs={inputs}",
            "size=40",
            "device=cpu",
        ],
        out,
    )
    apply(cfg)
    for name in outputs:
        assert (out / name).exists(), name
    if application == "tiled_reconstruction":
        report = json.loads((out / "tiled_mae.json").read_text())
        assert report["images"] == 3 and report["grid"] == {"rows": 3, "cols": 3}
        assert 0 < report["mae"] < 2


def test_evaluate_reports_tiled_mae_equal_to_patch_by_patch_reference(
    train_config, shared_data, tmp_path
):
    cfg = train_config(
        "experiment=imagenet_biggan_patches",
        f"data.root={shared_data / 'natural'}",
        "data.image_size=64",
        "data.batch_size=4",
        "debug=fdr",
    )
    train(cfg)
    checkpoint = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    eval_cfg = compose_config(
        "evaluate",
        [
            f"ckpt_path={checkpoint}",
            "metrics.fid.enabled=false",
            "metrics.runtime.enabled=false",
            "metrics.tiled_mae.max_images=3",
            "device=cpu",
        ],
        tmp_path / "eval",
    )
    entry = evaluate(eval_cfg)["metrics"]["test/tiled_mae"]
    assert entry["count"] == 3 and "64x64 images of 32x32 patches" in entry["protocol"]

    # Reference: crop each 32x32 patch by hand and reconstruct it on its own.
    model = build_model(eval_cfg_run(checkpoint, eval_cfg), load_checkpoint(checkpoint), eval_cfg)
    datamodule = instantiate_datamodule(eval_cfg_run(checkpoint, eval_cfg).data)
    datamodule.setup()
    errors = []
    with torch.no_grad():
        for index in range(3):
            image = to_signed_range(datamodule.tiled_test_dataset[index])
            for top in (0, 32):
                for left in (0, 32):
                    patch = image[None, :, top : top + 32, left : left + 32]
                    errors.append((model.reconstruct(patch) - patch).abs().mean())
    assert entry["value"] == pytest.approx(float(torch.stack(errors).mean()), rel=1e-5)


def eval_cfg_run(checkpoint: Path, eval_cfg):
    """The training run's config as evaluate.py restores it."""
    return restore_run_config(load_checkpoint(checkpoint), eval_cfg)


def test_apply_inverts_with_the_configured_method(tiny_checkpoint, tmp_path):
    """inversion=hybrid refines the encoder's patch codes: a lower tiled MAE than the encoder
    (the two-step generator can only fit so much, hence the small margin)."""
    photos = sorted((Path(__file__).parents[2] / "shared" / "data" / "natural").glob("*.JPEG"))
    maes = {}
    for method in ("encoder", "hybrid"):
        out = tmp_path / method
        overrides = [
            "application=tiled_reconstruction",
            f"inversion={method}",
            f"ckpt_path={tiny_checkpoint}",
            f"inputs={photos[0]}",
            "size=32",
            "device=cpu",
        ]
        if method == "hybrid":
            overrides += ["inversion.steps=30", "inversion.lpips_weight=0"]
        apply(compose_config("apply", overrides, out))
        maes[method] = json.loads((out / "tiled_mae.json").read_text())["mae"]
    assert maes["hybrid"] < maes["encoder"] - 1e-4, maes
