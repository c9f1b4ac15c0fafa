"""StyleGAN2 backbone: shapes, official state-dict layout, minibatch stddev, InvGAN on faces
(the layers' arithmetic is checked against references in test_stylegan2_kernels.py)."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import hydra
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms.functional import pil_to_tensor

from invgan.modules.invgan import InvGANModule
from invgan.modules.invgan_loss_config import InvGANLossConfig
from invgan.nn.stylegan2.discriminator import StyleGAN2Discriminator
from invgan.nn.stylegan2.generator import StyleGAN2Generator
from invgan.nn.stylegan2.minibatch_stddev import minibatch_stddev
from invgan.utils.images import to_signed_range
from tests.conftest import bare_cpu_trainer

W_DIM = 16
# Tiny widths: 32 channels at 4 and 8 px, 16 at 16 px, 8 at 32 px.
TINY = dict(channel_base=256, channel_max=32, channel_multiplier=1)


def tiny_generator(resolution: int = 16, channels: int = 3) -> StyleGAN2Generator:
    return StyleGAN2Generator(W_DIM, resolution, channels, n_mlp=2, **TINY)


def tiny_discriminator(resolution: int = 16, channels: int = 3) -> StyleGAN2Discriminator:
    return StyleGAN2Discriminator(W_DIM, resolution, channels, **TINY)


@pytest.mark.parametrize("resolution", [16, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes(resolution, channels):
    torch.manual_seed(0)
    generator, discriminator = (
        tiny_generator(resolution, channels),
        tiny_discriminator(resolution, channels),
    )
    w = generator.mapping(torch.randn(3, W_DIM))
    assert w.shape == (3, W_DIM)
    images = generator(w)
    assert images.shape == (3, channels, resolution, resolution)
    # One code in every layer: W+ with the code repeated gives the same image.
    n_latent = 2 * int(math.log2(resolution)) - 2
    assert generator.n_latent == n_latent
    w_plus = w[:, None].repeat(1, n_latent, 1)
    assert torch.equal(generator.eval()(w_plus), generator(w))
    out = discriminator(images)
    assert out.logits.shape == (3,)
    assert out.latents.shape == (3, W_DIM)
    # From-image conv, then one residual block per halving down to 4x4.
    assert [f.shape[-1] for f in out.features] == [
        resolution >> i for i in range(len(out.features))
    ]
    assert out.features[-1].shape[-1] == 4
    assert torch.equal(discriminator.encode(images), out.latents)
    assert torch.equal(discriminator.latents_from_features(out.features), out.latents)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="power of two"):
        tiny_generator(24)
    with pytest.raises(ValueError, match="W\\+"):
        tiny_generator()(torch.randn(2, 5, W_DIM))
    with pytest.raises(ValueError, match="truncation_latent"):
        tiny_generator()(torch.randn(2, W_DIM), truncation=0.5)


def official_widths(channel_multiplier: int) -> dict[int, int]:
    """The width table of the official StyleGAN2 networks (and the rosinality port)."""
    cm = channel_multiplier
    return {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm}


def rosinality_generator_layout(
    size: int, style_dim: int, n_mlp: int, channel_multiplier: int
) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the rosinality port's Generator(...).state_dict(), written out by hand."""
    ch = official_widths(channel_multiplier)
    layout: dict[str, tuple[int, ...]] = {}
    for i in range(1, n_mlp + 1):  # style.0 is the parameter-free PixelNorm
        layout[f"style.{i}.weight"] = (style_dim, style_dim)
        layout[f"style.{i}.bias"] = (style_dim,)
    layout["input.input"] = (1, ch[4], 4, 4)

    def styled_conv(prefix: str, c_in: int, c_out: int, upsample: bool) -> None:
        layout[f"{prefix}.conv.weight"] = (1, c_out, c_in, 3, 3)
        layout[f"{prefix}.conv.modulation.weight"] = (c_in, style_dim)
        layout[f"{prefix}.conv.modulation.bias"] = (c_in,)
        if upsample:
            layout[f"{prefix}.conv.blur.kernel"] = (4, 4)
        layout[f"{prefix}.noise.weight"] = (1,)
        layout[f"{prefix}.activate.bias"] = (c_out,)

    def to_rgb(prefix: str, c_in: int, upsample: bool) -> None:
        if upsample:
            layout[f"{prefix}.upsample.kernel"] = (4, 4)
        layout[f"{prefix}.conv.weight"] = (1, 3, c_in, 1, 1)
        layout[f"{prefix}.conv.modulation.weight"] = (c_in, style_dim)
        layout[f"{prefix}.conv.modulation.bias"] = (c_in,)
        layout[f"{prefix}.bias"] = (1, 3, 1, 1)

    styled_conv("conv1", ch[4], ch[4], upsample=False)
    to_rgb("to_rgb1", ch[4], upsample=False)
    sides = [4]
    c_in = ch[4]
    for k, res in enumerate(2**i for i in range(3, int(math.log2(size)) + 1)):
        styled_conv(f"convs.{2 * k}", c_in, ch[res], upsample=True)
        styled_conv(f"convs.{2 * k + 1}", ch[res], ch[res], upsample=False)
        to_rgb(f"to_rgbs.{k}", ch[res], upsample=True)
        sides += [res, res]
        c_in = ch[res]
    for i, side in enumerate(sides):
        layout[f"noises.noise_{i}"] = (1, 1, side, side)
    return layout


def rosinality_discriminator_layout(size: int, channel_multiplier: int) -> dict[str, tuple]:
    """Key -> shape of the rosinality port's Discriminator(...).state_dict(), by hand."""
    ch = official_widths(channel_multiplier)
    layout: dict[str, tuple[int, ...]] = {
        "convs.0.0.weight": (ch[size], 3, 1, 1),
        "convs.0.1.bias": (ch[size],),
    }
    res = size
    for j in range(1, int(math.log2(size)) - 1):
        c_in, c_out = ch[res], ch[res // 2]
        layout[f"convs.{j}.conv1.0.weight"] = (c_in, c_in, 3, 3)
        layout[f"convs.{j}.conv1.1.bias"] = (c_in,)
        layout[f"convs.{j}.conv2.0.kernel"] = (4, 4)
        layout[f"convs.{j}.conv2.1.weight"] = (c_out, c_in, 3, 3)
        layout[f"convs.{j}.conv2.2.bias"] = (c_out,)
        layout[f"convs.{j}.skip.0.kernel"] = (4, 4)
        layout[f"convs.{j}.skip.1.weight"] = (c_out, c_in, 1, 1)
        res //= 2
    layout["final_conv.0.weight"] = (ch[4], ch[4] + 1, 3, 3)
    layout["final_conv.1.bias"] = (ch[4],)
    layout["final_linear.0.weight"] = (ch[4], ch[4] * 16)
    layout["final_linear.0.bias"] = (ch[4],)
    layout["final_linear.1.weight"] = (1, ch[4])
    layout["final_linear.1.bias"] = (1,)
    return layout


def shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


@pytest.mark.parametrize(
    ("size", "style_dim", "n_mlp", "channel_multiplier"), [(16, 32, 2, 2), (64, 24, 3, 1)]
)
def test_state_dicts_have_the_rosinality_layout(size, style_dim, n_mlp, channel_multiplier):
    generator = StyleGAN2Generator(
        style_dim, size, 3, n_mlp=n_mlp, channel_multiplier=channel_multiplier
    )
    assert shapes(generator.state_dict()) == rosinality_generator_layout(
        size, style_dim, n_mlp, channel_multiplier
    )
    # The blur buffers hold the official values: outer([1,3,3,1])/64, times 4 after upsampling.
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    blur = torch.outer(taps, taps) / 64
    assert torch.equal(generator.state_dict()["convs.0.conv.blur.kernel"], 4 * blur)
    assert torch.equal(generator.state_dict()["to_rgbs.0.upsample.kernel"], 4 * blur)

    discriminator = StyleGAN2Discriminator(style_dim, size, 3, channel_multiplier)
    trunk_and_adversarial = {
        k: v for k, v in discriminator.state_dict().items() if not k.startswith("latent_head.")
    }
    assert shapes(trunk_and_adversarial) == rosinality_discriminator_layout(
        size, channel_multiplier
    )
    assert torch.equal(trunk_and_adversarial["convs.1.conv2.0.kernel"], blur)


def test_strict_load_reproduces_outputs():
    torch.manual_seed(0)
    source = tiny_generator()
    # A "checkpoint" that differs from any fresh initialisation in every tensor, buffers too.
    checkpoint = {k: v + 0.1 * torch.randn_like(v) for k, v in source.state_dict().items()}
    source.load_state_dict(checkpoint, strict=True)
    target = tiny_generator()
    target.load_state_dict(checkpoint, strict=True)
    w = torch.randn(2, W_DIM)
    source.eval()
    target.eval()
    with torch.no_grad():
        # Eval mode uses the stored noise maps, which are part of the checkpoint too.
        assert torch.equal(source(w), target(w))


def test_truncation_to_zero_gives_the_average_code_image():
    torch.manual_seed(0)
    generator = tiny_generator().eval()
    w_avg = generator.mean_latent(256)
    assert w_avg.shape == (1, W_DIM)
    w = generator.mapping(torch.randn(3, W_DIM))
    noise = [torch.randn(1, 1, side, side) for side in (4, 8, 8, 16, 16)]
    with torch.no_grad():
        truncated = generator(w, truncation=0.0, truncation_latent=w_avg, noise=noise)
        centre = generator(w_avg.expand(3, -1), noise=noise)
        plain = generator(w, noise=noise)
    assert torch.allclose(truncated, centre, atol=1e-6)
    assert not torch.allclose(plain, centre, atol=1e-3)


def test_minibatch_stddev_for_a_batch_not_divisible_by_the_group():
    x = torch.randn(6, 2, 4, 4)
    out = minibatch_stddev(x, group_size=4)  # 6 samples: groups of 3, not 4
    assert out.shape == (6, 3, 4, 4)
    assert torch.equal(out[:, :2], x)
    for i in range(6):
        group = x[[j for j in range(6) if j % 2 == i % 2]]  # samples i mod (6 / 3) share one
        expected = torch.sqrt(group.var(dim=0, unbiased=False) + 1e-8).mean()
        assert torch.allclose(out[i, 2], expected.expand(4, 4))
    # A prime batch size falls back to groups of one, whose spread is sqrt(1e-8).
    assert torch.allclose(minibatch_stddev(torch.randn(5, 2, 4, 4))[:, 2], torch.tensor(1e-4))


# ------------------------------------------------------------------------ InvGAN integration
ZERO_WEIGHTS = dict(
    adversarial_weight=0.0,
    latent_weight=0.0,
    cycle_weight=0.0,
    feature_matching_weight=0.0,
    mmd_weight=0.0,
)


def make_module(style_mixing_prob: float = 0.0, **loss) -> InvGANModule:
    torch.manual_seed(0)
    adam = functools.partial(torch.optim.Adam, lr=5e-3, betas=(0.0, 0.99))
    return InvGANModule(
        None,
        tiny_generator(channels=3),
        tiny_discriminator(channels=3),
        InvGANLossConfig(**loss),
        adam,
        adam,
        style_mixing_prob=style_mixing_prob,
    )


def test_generator_owned_mapping_is_trained_averaged_and_saved_once():
    # Only the MMD term: it reaches M directly (and G not at all).
    module = make_module(**{**ZERO_WEIGHTS, "mmd_weight": 1.0})
    assert module.mapping is module.generator.style
    assert module.networks("ema")[0] is module.ema["generator"].style
    assert set(module.ema) == {"generator", "discriminator"}
    state = module.state_dict()
    assert not any(k.startswith(("mapping.", "ema.mapping.")) for k in state)
    assert "generator.style.1.weight" in state and "ema.generator.style.1.weight" in state
    opt_g, _ = module.configure_optimizers()[0]
    g_params = opt_g.param_groups[0]["params"]
    assert len({id(p) for p in g_params}) == len(g_params) == len([*module.generator.parameters()])
    assert module.sample_latents(4).shape == (4, W_DIM)

    live_before = [p.detach().clone() for p in module.mapping.parameters()]
    ema_before = [p.clone() for p in module.networks("ema")[0].parameters()]
    trainer = bare_cpu_trainer(max_steps=2)
    trainer.fit(module, DataLoader(torch.rand(4, 3, 16, 16), batch_size=4))
    assert int(module.iteration) == 1
    for before, after in ((live_before, module.mapping), (ema_before, module.networks("ema")[0])):
        assert any(not torch.equal(b, p) for b, p in zip(before, after.parameters(), strict=True))


def test_style_mixing_only_touches_prior_codes():
    module = make_module(style_mixing_prob=1.0)
    w_prior, w_real = torch.randn(4, W_DIM), torch.randn(3, W_DIM)
    codes, unmixed = module._generator_codes(w_prior, w_real)
    n_latent = module.generator.n_latent
    assert codes.shape == (7, n_latent, W_DIM)
    assert not unmixed.any()
    # Every prior sample starts with its own code and switches to another one at some layer.
    assert torch.equal(codes[:4, 0], w_prior)
    assert all(not torch.equal(codes[i, -1], w_prior[i]) for i in range(4))
    # Inferred codes of real images drive every layer unchanged.
    assert torch.equal(codes[4:], w_real[:, None].expand(-1, n_latent, -1))
    assert torch.equal(
        make_module()._generator_codes(w_prior, w_real)[0], torch.cat([w_prior, w_real])
    )
    with pytest.raises(ValueError, match="style_mixing_prob"):
        InvGANModule(
            None,
            tiny_generator(),
            tiny_discriminator(),
            InvGANLossConfig(),
            None,
            None,
            style_mixing_prob=1.5,
        )


def test_config_builds_the_stylegan2_module(train_config):
    # tiny=False: the shared tiny overrides size a standalone mapping, which this config lacks.
    cfg = train_config(
        "model=invgan_stylegan2",
        "data=synthetic",
        "model.generator.w_dim=16",
        "model.generator.n_mlp=2",
        "model.generator.channel_base=64",
        "model.generator.channel_max=8",
        tiny=False,
    )
    module = hydra.utils.instantiate(cfg.model)
    assert module.mapping is module.generator.style and module.mapping.z_dim == 16
    assert isinstance(module.discriminator, StyleGAN2Discriminator)
    assert module.discriminator.w_dim == 16
    assert module.sample(2).shape == (
        2,
        cfg.data.channels,
        cfg.data.resolution,
        cfg.data.resolution,
    )


def load_faces(folder: Path, count: int, resolution: int) -> torch.Tensor:
    """The first `count` JPEGs of `folder`, centre-cropped square and resized, in [0, 1]."""
    images = []
    for path in sorted(folder.glob("*.jpg"))[:count]:
        with Image.open(path) as image:
            side = min(image.size)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            image = image.convert("RGB").crop((left, top, left + side, top + side))
            images.append(pil_to_tensor(image.resize((resolution, resolution), Image.BOX)))
    return torch.stack(images).float() / 255.0


def held_out_mae(module: InvGANModule, images: torch.Tensor) -> float:
    """Mean |x - G(D(x))| with the live networks (eval mode: fixed noise maps)."""
    with torch.no_grad():
        return float((module.reconstruct(images, "live") - images).abs().mean())


def test_short_run_on_faces_reduces_held_out_reconstruction_error(shared_data):
    faces = load_faces(shared_data / "faces", 64, 16)
    assert faces.shape == (64, 3, 16, 16)
    train_faces, held_out = faces[:48], to_signed_range(faces[48:])
    # The average training face as every reconstruction: about 0.38 on these faces.
    mean_face = to_signed_range(train_faces).mean(dim=0)
    mean_face_mae = float((mean_face - held_out).abs().mean())
    module = make_module(style_mixing_prob=0.5, pixel_weight=1.0, r1_gamma=1.0, r1_interval=4)
    initial = held_out_mae(module, held_out)
    trainer = bare_cpu_trainer(max_epochs=16)  # 96 iterations
    trainer.fit(module, DataLoader(train_faces, batch_size=8, shuffle=True))
    final = held_out_mae(module, held_out)
    assert final < 0.6 * initial, (initial, final)
    # Below the average face: reconstructions carry what is particular to each held-out face.
    assert final < mean_face_mae, (initial, final, mean_face_mae)
