"""BigGAN backbone: shapes, spectral norm, conditional batch norm, latent head, real-data run."""

from __future__ import annotations

import functools
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from PIL import Image
from torch.func import functional_call
from torch.nn.utils import parametrize
from torch.utils.data import DataLoader

from invgan.modules.invgan import InvGANModule
from invgan.modules.invgan_loss_config import InvGANLossConfig
from invgan.nn.biggan.conditional_batch_norm import ConditionalBatchNorm2d
from invgan.nn.biggan.discriminator import BigGANDiscriminator
from invgan.nn.biggan.generator import BigGANGenerator
from invgan.nn.biggan.spectral_norm import sn_conv2d, sn_linear
from invgan.nn.mapping import MappingMLP
from invgan.utils.ema import frozen_copy, update_ema
from invgan.utils.images import to_signed_range
from tests.conftest import bare_cpu_trainer

W_DIM = 8
# resolution -> (generator, discriminator) width multipliers of a tiny network.
TINY_WIDTHS = {16: ([1, 2], [1, 1, 2]), 32: ([2, 2, 2], [1, 2, 2, 2])}


def tiny_networks(
    resolution: int, channels: int, attention_resolution: int | None = None
) -> tuple[BigGANGenerator, BigGANDiscriminator]:
    g_widths, d_widths = TINY_WIDTHS[resolution]
    shared = dict(base_width=8, attention_resolution=attention_resolution)
    generator = BigGANGenerator(W_DIM, resolution, channels, width_multipliers=g_widths, **shared)
    discriminator = BigGANDiscriminator(
        W_DIM, resolution, channels, width_multipliers=d_widths, latent_hidden_dim=16, **shared
    )
    return generator, discriminator


@pytest.mark.parametrize(
    ("resolution", "channels", "attention_resolution"),
    [(16, 1, None), (16, 3, 8), (32, 3, None), (32, 1, 16)],
)
def test_shapes(resolution, channels, attention_resolution):
    torch.manual_seed(0)
    generator, discriminator = tiny_networks(resolution, channels, attention_resolution)
    if attention_resolution is not None:
        with torch.no_grad():  # the gain starts at 0; make the attention path count
            generator.attention.gain.fill_(1.0)
            discriminator.attention.gain.fill_(1.0)
    assert generator.w_dim == discriminator.w_dim == W_DIM
    assert (generator.resolution, generator.channels) == (resolution, channels)
    images = generator(torch.randn(3, W_DIM))
    assert images.shape == (3, channels, resolution, resolution)
    assert images.abs().max() <= 1.0
    out = discriminator(images)
    assert out.logits.shape == (3,)
    assert out.latents.shape == (3, W_DIM)
    assert len(out.features) == len(TINY_WIDTHS[resolution][1])
    assert out.features[-1].shape[2:] == (4, 4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(resolution=30), r"4 \* 2\*\*k"),
        (dict(resolution=4), r"4 \* 2\*\*k"),
        (dict(resolution=16, width_multipliers=[1, 1, 1]), "need 2 positive"),
        (dict(resolution=16, width_multipliers=[1, 0]), "need 2 positive"),
        (dict(resolution=16, width_multipliers=[1, 1], attention_resolution=4), r"\[8, 16\]"),
    ],
)
def test_bad_generator_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BigGANGenerator(W_DIM, channels=3, **kwargs)


def test_bad_discriminator_widths_are_rejected():
    with pytest.raises(ValueError, match="need 3 positive"):
        BigGANDiscriminator(W_DIM, 16, 3, width_multipliers=[1, 1])


@pytest.mark.parametrize(
    ("make_layer", "input_shape"),
    [
        (functools.partial(sn_conv2d, 4, 6, 3), (2, 4, 5, 5)),
        (functools.partial(sn_linear, 12, 5), (2, 12)),
    ],
)
def test_spectral_norm_bounds_the_largest_singular_value(make_layer, input_shape):
    torch.manual_seed(0)
    layer, inputs = make_layer(), torch.randn(input_shape)
    raw = layer.parametrizations.weight.original
    with torch.no_grad():  # a weight far from norm 1 with distinct singular values
        raw.copy_(10.0 * torch.randn_like(raw))
    assert torch.linalg.matrix_norm(raw.flatten(1), ord=2) > 10.0
    for _ in range(10):  # each training-mode forward pass runs one power iteration
        layer(inputs)
    layer.eval()
    effective = torch.linalg.matrix_norm(layer.weight.flatten(1), ord=2)
    assert float(effective.detach()) == pytest.approx(1.0, abs=1e-2)


def test_conditional_batch_norm_hand_computed():
    torch.manual_seed(0)
    norm = ConditionalBatchNorm2d(width=2, w_dim=3)
    # Channel 0 holds 1, 3, 5, 7 (mean 4, biased variance 5); channel 1 is channel 0 times 10.
    x = torch.tensor([[[[1.0, 3.0]], [[10.0, 30.0]]], [[[5.0, 7.0]], [[50.0, 70.0]]]])
    w = torch.randn(2, 3)
    with parametrize.cached():  # one spectral-norm weight for the layer and the reference
        out = norm(x, w)
        gain = 1.0 + w @ norm.gain.weight.T + norm.gain.bias
        bias = w @ norm.bias.weight.T + norm.bias.bias
    channel = (torch.tensor([[1.0, 3.0], [5.0, 7.0]]) - 4.0) / (5.0 + 1e-5) ** 0.5
    for n in range(2):
        for c in range(2):
            assert torch.allclose(out[n, c, 0], channel[n] * gain[n, c] + bias[n, c], atol=1e-5)


def test_latent_head_paths_agree():
    torch.manual_seed(0)
    _, discriminator = tiny_networks(16, 3, attention_resolution=8)
    discriminator.eval()  # no power iteration, so every call sees the same weights
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    out = discriminator(images)
    assert torch.equal(discriminator.latents_from_features(out.features), out.latents)
    assert torch.equal(discriminator.encode(images), out.latents)


def test_functional_call_and_ema_work_with_spectral_norm():
    torch.manual_seed(0)
    _, discriminator = tiny_networks(16, 3, attention_resolution=8)
    images = torch.rand(2, 3, 16, 16).requires_grad_(True)
    # What InvGANModule._judge_frozen does: D with detached weights, gradient to the input only.
    params = {name: p.detach() for name, p in discriminator.named_parameters()}
    assert any(name.endswith("parametrizations.weight.original") for name in params)
    functional_call(discriminator, params, (images,)).logits.sum().backward()
    assert images.grad.abs().sum() > 0
    assert all(p.grad is None for p in discriminator.parameters())

    ema = frozen_copy(discriminator)
    with torch.no_grad():
        for p in discriminator.parameters():
            p.add_(0.1 * torch.randn_like(p))
    discriminator(images)  # moves the power-iteration buffers too
    discriminator.eval()
    ema.eval()
    assert not torch.allclose(ema(images).latents, discriminator(images).latents)
    update_ema(ema, discriminator, decay=0.0)
    assert torch.equal(ema(images).latents, discriminator(images).latents)


def test_config_builds_the_biggan_module(train_config):
    cfg = train_config(
        "model=invgan_biggan",
        "data=synthetic",
        "model.generator.width_multipliers=[1,1]",
        "model.discriminator.width_multipliers=[1,1,1]",
        "model.generator.attention_resolution=8",
    )
    module = hydra.utils.instantiate(cfg.model)
    assert isinstance(module.generator, BigGANGenerator)
    assert isinstance(module.discriminator, BigGANDiscriminator)
    assert module.sample(2).shape == (2, cfg.data.channels, 16, 16)


def imagenet_patches(folder: Path, num_images: int, per_image: int) -> torch.Tensor:
    """`per_image` random 32x32 patches in [0, 1] from each of the first photos in `folder`."""
    generator = torch.Generator().manual_seed(0)
    patches = []
    for path in sorted(folder.glob("*.JPEG"))[:num_images]:
        with Image.open(path) as image:
            photo = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
        for _ in range(per_image):
            top, left = torch.randint(0, min(photo.shape[1:]) - 31, (2,), generator=generator)
            patches.append(photo[:, top : top + 32, left : left + 32])
    return torch.stack(patches).float() / 255.0


def held_out_mae(module: InvGANModule, images: torch.Tensor) -> float:
    """Mean |x - G(D(x))| of images in [-1, 1]."""
    with torch.no_grad():
        return float((module.reconstruct(images) - images).abs().mean())


def test_short_run_on_imagenet_patches_reduces_held_out_reconstruction_error(shared_data):
    # The paper's Section 4.3 setting in miniature: 32x32 random patches of ImageNet photos.
    patches = imagenet_patches(shared_data / "natural", num_images=64, per_image=4)
    train_patches, held_out = patches[:224], to_signed_range(patches[224:])  # 8 unseen photos
    torch.manual_seed(0)
    generator, discriminator = tiny_networks(32, 3)
    adam = functools.partial(torch.optim.Adam, lr=1e-3, betas=(0.0, 0.999))
    module = InvGANModule(
        MappingMLP(16, W_DIM, 32),
        generator,
        discriminator,
        InvGANLossConfig(adversarial="hinge", pixel_weight=1.0),
        adam,
        adam,
    )
    initial = held_out_mae(module, held_out)
    # Lightning counts both optimisers' steps: 60 iterations.
    trainer = bare_cpu_trainer(max_steps=2 * 60)
    loader = DataLoader(
        train_patches, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    trainer.fit(module, loader)
    final = held_out_mae(module, held_out)
    assert final < initial, (initial, final)
    # Reference point: a mid-grey image (all zeros) scores mean |x|, about 0.44 here.
    assert final < float(held_out.abs().mean()), (initial, final)
