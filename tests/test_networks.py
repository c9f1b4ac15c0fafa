"""Shapes and dtypes of the mapping network, generator and discriminator heads."""

from __future__ import annotations

import pytest
import torch

from invgan.nn.dcgan import DCGANDiscriminator, DCGANGenerator
from invgan.nn.mapping import MappingMLP


@pytest.mark.parametrize(
    ("resolution", "channels", "num_scales"), [(28, 1, 2), (32, 3, 3), (16, 1, 2), (64, 3, 4)]
)
def test_dcgan_shapes(resolution, channels, num_scales):
    mapping = MappingMLP(z_dim=12, w_dim=10, hidden_dim=32)
    generator = DCGANGenerator(10, resolution, channels, base_width=8, num_scales=num_scales)
    discriminator = DCGANDiscriminator(
        10, resolution, channels, base_width=8, num_scales=num_scales, latent_hidden_dim=16
    )
    w = mapping(torch.randn(5, 12))
    assert w.shape == (5, 10) and w.dtype == torch.float32
    images = generator(w)
    assert images.shape == (5, channels, resolution, resolution)
    assert images.dtype == torch.float32
    assert images.abs().max() <= 1.0
    out = discriminator(images)
    assert out.logits.shape == (5,)
    assert out.latents.shape == (5, 10)
    assert len(out.features) == num_scales
    assert torch.equal(discriminator.encode(images), out.latents)


def test_mapping_depth():
    assert sum(isinstance(m, torch.nn.Linear) for m in MappingMLP(4, 4, 8, 2).modules()) == 2
    with pytest.raises(ValueError, match="num_layers"):
        MappingMLP(4, 4, 8, 0)


@pytest.mark.parametrize(("resolution", "num_scales"), [(30, 2), (28, 3), (16, 4)])
def test_resolution_that_does_not_divide_is_rejected(resolution, num_scales):
    with pytest.raises(ValueError, match="resolution"):
        DCGANGenerator(8, resolution, 1, num_scales=num_scales)


def test_discriminator_convs_per_scale():
    shallow = DCGANDiscriminator(10, 28, 1, base_width=8, latent_hidden_dim=16)
    deep = DCGANDiscriminator(10, 28, 1, base_width=8, latent_hidden_dim=16, convs_per_scale=3)
    for block in deep.blocks:
        convs = [m for m in block if isinstance(m, torch.nn.Conv2d)]
        assert [c.stride for c in convs] == [(2, 2), (1, 1), (1, 1)]
    # The default is DCGAN's trunk with the parameter names of checkpoints written before the
    # option existed.
    assert {k for k in shallow.state_dict() if k.startswith("blocks.")} == {
        f"blocks.{i}.0.{p}" for i in range(2) for p in ("weight", "bias")
    }
    images = torch.randn(3, 1, 28, 28)
    out = deep(images)
    assert [f.shape[1:] for f in out.features] == [(8, 14, 14), (16, 7, 7)]
    assert out.latents.shape == (3, 10)
    with pytest.raises(ValueError, match="convs_per_scale"):
        DCGANDiscriminator(10, 28, 1, convs_per_scale=0)
