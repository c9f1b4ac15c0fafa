"""InvGAN training step wiring: which losses move which networks, EMA, configuration checks."""

from __future__ import annotations

import functools

import pytest
import torch
from torch.utils.data import DataLoader

from invgan.modules.invgan import InvGANModule
from invgan.modules.invgan_loss_config import InvGANLossConfig
from invgan.nn.dcgan import DCGANDiscriminator, DCGANGenerator
from invgan.nn.mapping import MappingMLP
from invgan.utils.ema import update_ema
from tests.conftest import bare_cpu_trainer

ZERO_WEIGHTS = dict(
    adversarial_weight=0.0,
    latent_weight=0.0,
    cycle_weight=0.0,
    feature_matching_weight=0.0,
    pixel_weight=0.0,
    mmd_weight=0.0,
)


def make_module(
    reconstruction_updates: str = "discriminator", scheduler_g=None, **loss_weights
) -> InvGANModule:
    torch.manual_seed(0)
    return InvGANModule(
        MappingMLP(8, 8, 16),
        DCGANGenerator(8, 16, 1, base_width=4, num_scales=2),
        DCGANDiscriminator(8, 16, 1, base_width=4, num_scales=2, latent_hidden_dim=16),
        InvGANLossConfig(**{**ZERO_WEIGHTS, **loss_weights}),
        functools.partial(torch.optim.SGD, lr=0.1),
        functools.partial(torch.optim.SGD, lr=0.1),
        reconstruction_updates=reconstruction_updates,
        scheduler_g=scheduler_g,
    )


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module, prefix: str) -> bool:
    return any(
        not torch.equal(before[k], v) for k, v in module.named_parameters() if k.startswith(prefix)
    )


def one_iteration(module: InvGANModule) -> None:
    images = torch.rand(8, 1, 16, 16)
    trainer = bare_cpu_trainer(max_steps=2)
    trainer.fit(module, DataLoader(images, batch_size=8))
    assert int(module.iteration) == 1


def test_adversarial_loss_never_updates_the_latent_head():
    module = make_module(adversarial_weight=1.0)
    d_before, g_before = snapshot(module.discriminator), snapshot(module.generator)
    one_iteration(module)
    assert changed(g_before, module.generator, "")
    assert changed(d_before, module.discriminator, "adversarial_head")
    # If G's adversarial gradient leaked into D through the inferred codes w_R, the latent
    # head would move here.
    assert not changed(d_before, module.discriminator, "latent_head")


@pytest.mark.parametrize("weight", ["feature_matching_weight", "pixel_weight", "cycle_weight"])
def test_reconstruction_losses_train_generator_and_latent_head(weight):
    module = make_module(**{weight: 1.0})
    d_before, g_before = snapshot(module.discriminator), snapshot(module.generator)
    one_iteration(module)
    assert changed(g_before, module.generator, "")
    assert changed(d_before, module.discriminator, "latent_head")
    assert not changed(d_before, module.discriminator, "adversarial_head")


@pytest.mark.parametrize(
    ("updates", "trunk_moves"), [("latent_head", False), ("discriminator", True)]
)
def test_reconstruction_updates_selects_the_trained_part_of_d(updates, trunk_moves):
    module = make_module(updates, pixel_weight=1.0)
    d_before = snapshot(module.discriminator)
    one_iteration(module)
    assert changed(d_before, module.discriminator, "latent_head")
    assert changed(d_before, module.discriminator, "blocks") == trunk_moves


def test_mmd_gives_gradient_to_mapping_network():
    module = make_module(mmd_weight=1.0)
    m_before = snapshot(module.mapping)
    one_iteration(module)
    assert changed(m_before, module.mapping, "")


def test_standalone_mapping_is_saved_under_its_own_name():
    module = make_module()
    assert module.mapping is module.networks("live")[0]
    assert module.networks("ema")[0] is module.ema["mapping"]
    top_level = {k.split(".")[0] for k in module.state_dict()}
    ema = {k.split(".")[1] for k in module.state_dict() if k.startswith("ema.")}
    assert top_level == {"mapping", "generator", "discriminator", "ema", "iteration"}
    assert ema == {"mapping", "generator", "discriminator"}
    opt_g, _ = module.configure_optimizers()[0]
    expected = [*module.mapping.parameters(), *module.generator.parameters()]
    assert [id(p) for p in opt_g.param_groups[0]["params"]] == [id(p) for p in expected]


def test_epoch_schedules_are_built_and_plateau_schedules_refused():
    step = make_module(scheduler_g=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1))
    [scheduler] = step.configure_optimizers()[1]
    assert isinstance(scheduler["scheduler"], torch.optim.lr_scheduler.StepLR)
    plateau = make_module(scheduler_g=torch.optim.lr_scheduler.ReduceLROnPlateau)
    with pytest.raises(ValueError, match="ReduceLROnPlateau.*StepLR"):
        plateau.configure_optimizers()


def test_ema_update_hand_computed():
    source, target = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    with torch.no_grad():
        source.weight.fill_(1.0)
        target.weight.fill_(3.0)
    update_ema(target, source, decay=0.75)
    assert float(target.weight) == pytest.approx(0.75 * 3.0 + 0.25 * 1.0)


def test_reconstruct_pairs_networks_of_one_set():
    module = make_module()
    images = torch.rand(4, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        module.ema["generator"].to_image.bias.add_(0.5)  # make the EMA set differ
        live = module.reconstruct(images, "live")
        ema = module.reconstruct(images, "ema")
        expected = module.generator.eval()(module.discriminator.encode(images))
    assert torch.allclose(live, expected)
    assert not torch.allclose(live, ema)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mmd_weight", -1.0, "mmd_weight=-1.0: must be .*>= 0"),
        ("adversarial", "wgan", "allowed"),
        ("pixel_distance", "l3", "allowed"),
        ("r1_interval", 0, "r1_interval"),
        ("mmd_bandwidths", (), "mmd_bandwidths"),
    ],
)
def test_bad_loss_values_are_rejected(field, value, message):
    with pytest.raises(ValueError, match=message):
        InvGANLossConfig(**{field: value})


def test_bad_network_set_is_rejected():
    with pytest.raises(ValueError, match="inversion_networks"):
        InvGANModule(
            MappingMLP(8, 8),
            DCGANGenerator(8, 16, 1),
            DCGANDiscriminator(8, 16, 1),
            InvGANLossConfig(),
            torch.optim.Adam,
            torch.optim.Adam,
            inversion_networks="best",
        )
