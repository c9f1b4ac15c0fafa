"""Gradient accumulation (`trainer.accumulate_grad_batches`) in the manually optimised recipes:
one iteration over k batches moves the weights by the mean of the k single-batch updates."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from invgan.checkpoints.format import load_checkpoint
from invgan.modules.indomain import InDomainEncoderModule
from invgan.modules.invgan import InvGANModule
from invgan.modules.invgan_loss_config import InvGANLossConfig
from invgan.nn.dcgan import DCGANDiscriminator, DCGANGenerator
from invgan.nn.mapping import MappingMLP
from invgan.training.pipeline import gradient_accumulation, train
from tests import test_faults
from tests.conftest import bare_cpu_trainer

# Plain SGD: an update is -lr * gradient, so updates add up the way gradients do.
SGD = functools.partial(torch.optim.SGD, lr=0.05)


def invgan_module(r1_gamma: float = 1.0) -> InvGANModule:
    """Tiny DCGAN InvGAN with every loss term on, R1 included by default (lazy, at iteration
    0)."""
    return InvGANModule(
        MappingMLP(8, 8, 16),
        DCGANGenerator(8, 16, 1, base_width=4, num_scales=2),
        DCGANDiscriminator(8, 16, 1, base_width=4, num_scales=2, latent_hidden_dim=16),
        InvGANLossConfig(pixel_weight=1.0, r1_gamma=r1_gamma),
        SGD,
        SGD,
    )


def indomain_module() -> InDomainEncoderModule:
    """The fault tests' tiny in-domain recipe, with plain SGD and R1 at iteration 0."""
    return test_faults.indomain_module(optimizer=SGD, r1_gamma=1.0)


class SeedEachBatch(pl.Callback):
    """Seed the global RNG before batch i with `first + i`: the latents a batch draws then
    depend on its position only, whichever run it is part of."""

    def __init__(self, first: int) -> None:
        self.first = first

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        """Reseed."""
        torch.manual_seed(self.first + batch_idx)


def update_after(
    factory: Callable[[], pl.LightningModule],
    images: torch.Tensor,
    accumulate: int,
    first_seed: int = 0,
) -> tuple[pl.LightningModule, dict[str, torch.Tensor]]:
    """Fit a fresh module (same initial weights every time) on `images` in batches of 4 for one
    epoch; the module and its parameter change."""
    torch.manual_seed(0)
    module = factory()
    module.accumulate_grad_batches = accumulate
    before = {k: v.detach().clone() for k, v in module.named_parameters()}
    trainer = bare_cpu_trainer(max_epochs=1, callbacks=[SeedEachBatch(first_seed)])
    trainer.fit(module, DataLoader(images, batch_size=4))
    return module, {k: v.detach() - before[k] for k, v in module.named_parameters()}


@pytest.mark.parametrize(
    ("factory", "channels"), [(invgan_module, 1), (indomain_module, 3)], ids=["invgan", "indomain"]
)
def test_accumulated_iteration_is_the_mean_of_single_batch_updates(factory, channels):
    torch.manual_seed(1)
    images = torch.rand(8, channels, 16, 16)
    module, accumulated = update_after(factory, images, accumulate=2)
    assert int(module.iteration) == 1
    first = update_after(factory, images[:4], accumulate=1, first_seed=0)[1]
    second = update_after(factory, images[4:], accumulate=1, first_seed=1)[1]
    moved = [name for name, delta in accumulated.items() if delta.abs().max() > 0]
    assert len(moved) > 10  # the networks being trained did move
    for name, delta in accumulated.items():
        torch.testing.assert_close(
            delta, (first[name] + second[name]) / 2, rtol=1e-4, atol=1e-6, msg=name
        )


def test_short_last_window_of_an_epoch_steps_too():
    module, _ = update_after(invgan_module, torch.rand(12, 1, 16, 16), accumulate=2)
    assert int(module.iteration) == 2  # batches (0, 1) and (2,)


def test_setting_goes_to_manual_recipes_and_to_lightning_for_automatic_ones():
    trainer_cfg = OmegaConf.create({"accumulate_grad_batches": 3})
    manual = invgan_module()
    assert gradient_accumulation(manual, trainer_cfg) == {"accumulate_grad_batches": 1}
    assert manual.accumulate_grad_batches == 3
    automatic = torch.nn.Linear(1, 1)
    automatic.automatic_optimization = True
    assert gradient_accumulation(automatic, trainer_cfg) == {}
    with pytest.raises(ValueError, match="accumulate_grad_batches must be an integer >= 1"):
        gradient_accumulation(manual, OmegaConf.create({"accumulate_grad_batches": 0}))


def test_train_py_accumulates_for_invgan(train_config):
    cfg = train_config(
        "data=synthetic",
        "debug=fdr",
        "trainer.fast_dev_run=false",
        "trainer.max_steps=2",  # one iteration: a step of each of InvGAN's two optimizers
        "trainer.accumulate_grad_batches=3",
        "trainer.limit_val_batches=1",
        "test=false",
    )
    train(cfg)
    checkpoint = load_checkpoint(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")
    assert int(checkpoint["state_dict"]["iteration"]) == 1
    # Saved at the end of the last batch, which Lightning counts as processed, not completed.
    batches = checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["processed"]
    assert batches == 3
