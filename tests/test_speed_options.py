"""Speed options: bf16 mixed precision, channels_last and torch.compile change how the networks
run, not what they compute."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from invgan.callbacks.channels_last import ChannelsLast
from invgan.callbacks.compile_networks import CompileNetworks
from invgan.modules.invgan import InvGANModule
from invgan.training.pipeline import train
from tests.conftest import bare_cpu_trainer
from tests.test_gradient_accumulation import invgan_module
from tests.test_train_evaluate import ENCODER_RECIPES


class GeneratorAutocast(pl.Callback):
    """Records the CPU autocast dtype (None when autocast is off) each time the generator runs
    during fitting (the generator's own output dtype says little: StyleGAN2 adds float32
    biases to its bfloat16 convolutions)."""

    seen: set[torch.dtype | None] = set()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Hook the generator (InvGAN's, or the backbone in the encoder recipes' frozen one)."""
        backbone = getattr(pl_module.generator, "generator", pl_module.generator)
        backbone.register_forward_pre_hook(lambda module, inputs: self.record())

    @staticmethod
    def record() -> None:
        """Note the autocast state of this forward pass."""
        enabled = torch.is_autocast_enabled("cpu")
        GeneratorAutocast.seen.add(torch.get_autocast_dtype("cpu") if enabled else None)


@pytest.mark.parametrize(
    ("experiment", "data"),
    [
        ("mnist_dcgan_invgan", "data=synthetic"),
        ("celeba_stylegan_invgan", "faces"),
        ("celeba_psp", "faces"),
        ("celeba_indomain", "faces"),
    ],
)
def test_bf16_mixed_precision_trains_every_recipe(
    experiment, data, train_config, shared_data, request
):
    overrides = [data] if data.startswith("data=") else [f"data.root={shared_data / data}"]
    if experiment in ENCODER_RECIPES:
        generator = request.getfixturevalue("face_generator_checkpoint")
        overrides += [f"model.generator.path={generator}", "data.resolution=16"]
    if experiment == "celeba_psp":
        # PyTorch's CPU bfloat16 convolution backward returns wrong (at times non-finite)
        # weight gradients for convolutions whose output is 1x1, which pSp's coarsest
        # map-to-style block has at 16 px; at 32 px its maps are 2x2. Real sizes are unaffected.
        overrides.append("model.encoder_resolution=32")
    GeneratorAutocast.seen = set()
    cfg = train_config(
        f"experiment={experiment}",
        "debug=fdr",
        "data.batch_size=4",
        "trainer.precision=bf16-mixed",
        "+callbacks.dtype._target_=tests.test_speed_options.GeneratorAutocast",
        *overrides,
    )
    metrics = train(cfg)
    # Autocast wraps the training steps (callbacks such as the image grids sample in float32).
    assert torch.bfloat16 in GeneratorAutocast.seen
    losses = {k: v for k, v in metrics.items() if k.startswith("train/loss")}
    assert losses and all(math.isfinite(v) for v in losses.values()), losses


def fit_two_iterations(callbacks: list[pl.Callback], r1_gamma: float = 1.0) -> InvGANModule:
    """A fresh tiny InvGAN (same weights and latents every call) after two iterations."""
    torch.manual_seed(0)
    module = invgan_module(r1_gamma)
    images = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    bare_cpu_trainer(max_steps=4, callbacks=callbacks).fit(
        module, DataLoader(images, batch_size=4)
    )
    return module


def assert_same_weights(first: torch.nn.Module, second: torch.nn.Module) -> None:
    """Same names, values equal up to float reassociation."""
    one, two = first.state_dict(), second.state_dict()
    assert list(one) == list(two)
    for name in one:
        torch.testing.assert_close(one[name], two[name], rtol=1e-4, atol=1e-5, msg=name)


def test_channels_last_converts_the_networks_and_keeps_the_result():
    eager = fit_two_iterations([])
    nhwc = fit_two_iterations([ChannelsLast(enabled=True)])
    weight = nhwc.discriminator.blocks[1][0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert not weight.is_contiguous()
    assert_same_weights(eager, nhwc)


def test_compiled_networks_train_like_eager_ones():
    eager = fit_two_iterations([], r1_gamma=0.0)
    # aot_eager runs torch.compile's graph capture and autograd without generating C++.
    networks = ["mapping", "generator", "discriminator"]
    compiled = fit_two_iterations([CompileNetworks(networks, backend="aot_eager")], r1_gamma=0.0)
    assert all(getattr(compiled, name)._compiled_call_impl is not None for name in networks)
    assert_same_weights(eager, compiled)


@pytest.mark.parametrize(
    ("networks", "message"),
    [(["decoder"], "does not have; its networks"), (["discriminator"], "R1 is on")],
)
def test_compile_refuses_what_cannot_work(networks, message):
    with pytest.raises(ValueError, match=message):
        fit_two_iterations([CompileNetworks(networks, backend="aot_eager")], r1_gamma=1.0)


def test_speed_options_from_the_command_line(train_config):
    cfg = train_config(
        "data=synthetic",
        "debug=fdr",
        "callbacks.channels_last.enabled=true",
        "callbacks.compile.networks=[generator]",
        "callbacks.compile.backend=aot_eager",
        "trainer.precision=bf16-mixed",
    )
    metrics = train(cfg)
    assert all(math.isfinite(v) for k, v in metrics.items() if k.startswith("train/loss"))
