"""Frozen generators loaded from invgan runs and rosinality StyleGAN2 files, and refusals."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from invgan.checkpoints.format import CheckpointError, load_checkpoint
from invgan.checkpoints.generator_import import load_frozen_generator
from invgan.nn.stylegan2.generator import StyleGAN2Generator

TINY = {"w_dim": 16, "n_mlp": 2, "channel_multiplier": 1, "channel_max": 16}


class NotWeights:
    """An arbitrary class: unpickling it could run code, so loaders must refuse it."""


def _rosinality_file(path: Path, resolution: int, channel_base: int, **extra) -> Path:
    torch.manual_seed(0)
    generator = StyleGAN2Generator(resolution=resolution, channel_base=channel_base, **TINY)
    content = {"g_ema": generator.state_dict(), "args": argparse.Namespace(size=resolution)}
    torch.save({**content, **extra}, path)
    return path


def test_invgan_run_loads_its_ema_generator_and_mapping(face_generator_checkpoint):
    frozen = load_frozen_generator(face_generator_checkpoint, resolution=16, channels=3)
    state = load_checkpoint(face_generator_checkpoint)["state_dict"]
    for name, tensor in frozen.generator.state_dict().items():
        assert torch.equal(tensor, state[f"ema.generator.{name}"]), name
    assert (frozen.resolution, frozen.w_dim, frozen.n_latent) == (16, 16, 6)
    live = load_frozen_generator(face_generator_checkpoint, networks="live")
    assert torch.equal(live.generator.input.input, state["generator.input.input"])


def test_frozen_generator_passes_gradients_to_codes_only(face_generator_checkpoint):
    frozen = load_frozen_generator(face_generator_checkpoint)
    frozen.train()
    assert not frozen.training and not frozen.generator.training
    codes = frozen.expand_to_codes(frozen.latent_avg.expand(2, -1)).clone().requires_grad_()
    frozen.synthesize(codes).square().mean().backward()
    assert codes.grad is not None and codes.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in frozen.parameters())
    # Eval mode uses the stored noise, so the same code gives the same image.
    assert torch.equal(frozen.synthesize(codes), frozen.synthesize(codes))


def test_latent_avg_is_the_mean_of_mapped_prior_samples(face_generator_checkpoint):
    frozen = load_frozen_generator(face_generator_checkpoint, latent_avg_samples=3000)
    z = torch.randn(3000, frozen.z_dim, generator=torch.Generator().manual_seed(1))
    brute_force = frozen.map(z).mean(dim=0)
    spread = frozen.map(z).std(dim=0).mean()
    assert (frozen.latent_avg - brute_force).abs().max() < 0.1 * spread


@pytest.mark.parametrize(("resolution", "channel_base"), [(16, 1024), (32, 256)])
def test_rosinality_file_loads_with_architecture_read_from_weights(
    tmp_path, resolution, channel_base
):
    latent_avg = torch.randn(16)
    path = _rosinality_file(tmp_path / "g.pt", resolution, channel_base, latent_avg=latent_avg)
    frozen = load_frozen_generator(path, resolution=resolution, channels=3)
    reference = StyleGAN2Generator(resolution=resolution, channel_base=channel_base, **TINY)
    reference.load_state_dict(torch.load(path, weights_only=False)["g_ema"])
    reference.eval()
    w = torch.randn(3, 16)
    assert torch.equal(frozen.synthesize(w), reference(w))
    assert torch.equal(frozen.latent_avg, latent_avg)
    assert frozen.architecture["generator"]["resolution"] == resolution


def test_rosinality_file_without_latent_avg_estimates_it(tmp_path):
    path = _rosinality_file(tmp_path / "g.pt", 16, 1024)
    frozen = load_frozen_generator(path, latent_avg_samples=2000)
    assert frozen.latent_avg.abs().sum() > 0
    z = torch.randn(2000, 16, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(frozen.latent_avg, frozen.map(z).mean(0), atol=0.2)


def test_resolution_mismatch_names_both_values(tmp_path):
    path = _rosinality_file(tmp_path / "g.pt", 16, 1024)
    with pytest.raises(ValueError, match=r"resolution 16, but the config expects 64"):
        load_frozen_generator(path, resolution=64)


def test_pickled_arbitrary_object_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": {}, "payload": NotWeights()}, path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_frozen_generator(path)


def test_other_files_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.generator.path"):
        load_frozen_generator(tmp_path / "missing.pt")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="neither an invgan run"):
        load_frozen_generator(other)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(_rosinality_file(tmp_path / "g.pt", 16, 1024).read_bytes()[:500])
    with pytest.raises(CheckpointError, match="truncated"):
        load_frozen_generator(truncated)
