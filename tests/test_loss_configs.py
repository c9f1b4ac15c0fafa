"""The recipes' frozen loss configs: each value is refused once, on construction, naming its full
config key; a built config cannot change; and each default is written in one YAML file (the
InvGAN weights in conf/model/loss/invgan.yaml, used by every InvGAN model) that the dataclass
defaults match."""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from invgan.callbacks.compile_networks import CompileNetworks
from invgan.inversion.adam_descent import adam_descent
from invgan.inversion.optimization import LatentOptimization
from invgan.inversion.schedule import ramped_learning_rate
from invgan.losses.adversarial import generator_loss
from invgan.modules.e4e import E4EModule
from invgan.modules.e4e_loss_config import E4ELossConfig
from invgan.modules.indomain import InDomainEncoderModule
from invgan.modules.indomain_loss_config import InDomainLossConfig
from invgan.modules.invgan_loss_config import InvGANLossConfig
from invgan.modules.psp import PSPModule
from invgan.modules.psp_loss_config import PSPLossConfig
from invgan.nn.encoders.indomain import InDomainEncoder
from invgan.nn.encoders.psp import psp_encoder
from invgan.nn.frozen_generator import FrozenGenerator
from invgan.nn.latent_discriminator import LatentDiscriminator
from invgan.nn.stylegan2.discriminator import StyleGAN2Discriminator
from invgan.nn.stylegan2.generator import StyleGAN2Generator
from invgan.utils.config_checks import ConfigValueError
from tests.conftest import CONFIG_DIR, compose_config

# Per recipe: its loss config and a weight field, which lives at `<key prefix>.<field>`.
RECIPE_WEIGHTS = [
    (InvGANLossConfig, "model.loss", "mmd_weight"),
    (InvGANLossConfig, "model.loss", "r1_gamma"),
    (PSPLossConfig, "model", "lpips_weight"),
    (E4ELossConfig, "model", "w_discriminator_weight"),
    (InDomainLossConfig, "model", "perceptual_weight"),
]
INVGAN_MODELS = ("invgan_dcgan", "invgan_biggan", "invgan_stylegan2", "invgan_dcgan_mnist")
# What each InvGAN model sets differently from conf/model/loss/invgan.yaml, and only that.
INVGAN_MODEL_LOSS_CHANGES: dict[str, dict[str, Any]] = {
    "invgan_dcgan": {},
    "invgan_biggan": {"adversarial": "hinge"},
    "invgan_stylegan2": {"r1_gamma": 10.0},
    "invgan_dcgan_mnist": {"pixel_weight": 1.0, "mmd_bandwidths": [0.02, 0.05, 0.1, 0.2, 0.5]},
}


# ------------------------------------------------------------------ refused once, by key
@pytest.mark.parametrize(("config", "prefix", "field"), RECIPE_WEIGHTS)
@pytest.mark.parametrize("value", [-1.0, math.nan])
def test_each_recipes_loss_config_refuses_a_bad_weight_naming_its_key(
    config, prefix, field, value
):
    with pytest.raises(ConfigValueError) as error:
        config(**{field: value})
    shown = "nan" if math.isnan(value) else "-1.0"
    assert f"{prefix}.{field}={shown}: must be" in str(error.value)
    assert ">= 0" in str(error.value)


def test_recipe_rules_name_their_keys_and_the_fix():
    with pytest.raises(ConfigValueError, match=r"model\.loss\.adversarial='wgan'.*allowed"):
        InvGANLossConfig(adversarial="wgan")
    with pytest.raises(ConfigValueError, match=r"model\.loss\.feature_distance='l3'.*l1, l2"):
        InvGANLossConfig(feature_distance="l3")
    with pytest.raises(ConfigValueError, match=r"model\.l2_weight, .* all 0.*set one of them"):
        PSPLossConfig(l2_weight=0.0, lpips_weight=0.0)
    with pytest.raises(ConfigValueError, match=r"model\.progressive_start=-3: must be an integer"):
        E4ELossConfig(progressive_start=-3)
    with pytest.raises(ConfigValueError, match=r"model\.r1_interval=0: must be >= 1"):
        InDomainLossConfig(r1_interval=0)
    # The loss function and the config share one rule: the same allowed kinds.
    with pytest.raises(ValueError, match=r"kind='wgan'.*allowed: non_saturating, hinge"):
        generator_loss(torch.zeros(2), "wgan")


def _never_built(**_: Any) -> None:
    raise AssertionError("a network was built before the loss config was refused")


@pytest.mark.parametrize(
    ("build", "key"),
    [
        (lambda: PSPModule(None, _never_built, None, lpips_weight=-1.0), "model.lpips_weight"),
        (lambda: E4EModule(None, _never_built, None, None, None, delta_weight=-1.0),
         "model.delta_weight"),
        (lambda: E4EModule(None, _never_built, None, None, None, l2_weight=math.nan),
         "model.l2_weight"),
        (lambda: InDomainEncoderModule(None, _never_built, None, None, None, None,
                                       adversarial_weight=-1.0), "model.adversarial_weight"),
    ],
)  # fmt: skip
def test_recipes_refuse_bad_weights_before_building_any_network(build, key):
    # The generator is None: reading its resolution to build the encoder would fail too.
    with pytest.raises(ConfigValueError, match=key):
        build()


def _tiny_recipe(name: str, r1_gamma: float) -> E4EModule | InDomainEncoderModule:
    """A 16-px e4e or in-domain module with R1 weight `r1_gamma`."""
    generator = FrozenGenerator(
        StyleGAN2Generator(
            w_dim=16, resolution=16, n_mlp=2, channel_base=256, channel_max=16,
            channel_multiplier=1,
        )
    )  # fmt: skip
    adam = functools.partial(torch.optim.Adam, lr=1e-3)
    if name == "e4e":
        encoder = functools.partial(
            psp_encoder, architecture="e4e", blocks=[1, 1, 1, 1], base_width=8
        )
        discriminator = functools.partial(LatentDiscriminator, hidden_width=8)
        return E4EModule(
            generator, encoder, adam, discriminator, adam, r1_gamma=r1_gamma, lpips_weight=0.0
        )
    return InDomainEncoderModule(
        generator,
        functools.partial(InDomainEncoder, base_width=4, max_width=8),
        StyleGAN2Discriminator(
            w_dim=1, resolution=16, channel_multiplier=1, channel_base=256, channel_max=16
        ),
        lambda: None,
        adam,
        adam,
        r1_gamma=r1_gamma,
    )


@pytest.mark.parametrize("recipe", ["e4e", "indomain"])
def test_the_compile_callback_reads_r1_from_the_recipes_loss_config(recipe):
    # R1's double backward cannot be compiled: a discriminator with R1 on is refused.
    callback = CompileNetworks(["discriminator"], backend="aot_eager")
    module = _tiny_recipe(recipe, r1_gamma=10.0)
    assert module.loss_config.r1_gamma == 10.0
    with pytest.raises(ValueError, match="R1 is on"):
        callback.setup(None, module, "fit")
    module = _tiny_recipe(recipe, r1_gamma=0.0)
    callback.setup(None, module, "fit")
    assert module.discriminator._compiled_call_impl is not None


# ------------------------------------------------------------------ frozen
@pytest.mark.parametrize(
    "config", [InvGANLossConfig(), PSPLossConfig(), E4ELossConfig(), InDomainLossConfig()]
)
def test_a_built_loss_config_cannot_be_changed(config):
    field = next(f.name for f in dataclasses.fields(config) if f.name.endswith("_weight"))
    before = getattr(config, field)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(config, field, -1.0)  # the value the construction checks would refuse
    assert getattr(config, field) == before


# ------------------------------------------------------------------ steps >= 1, one rule
def test_step_counts_are_refused_by_one_rule_naming_the_key():
    with pytest.raises(ConfigValueError, match=r"^steps=0: must be an integer >= 1$"):
        ramped_learning_rate(0, 0, 0.1)
    marker = torch.zeros(1)
    with pytest.raises(ConfigValueError, match=r"^steps=-2: must be an integer >= 1$"):
        adam_descent([marker], lambda step: marker.sum(), -2, 0.1)
    assert not marker.requires_grad  # refused before the tensor was touched
    # Checked before the model is read: None would fail on first use.
    with pytest.raises(ConfigValueError, match=r"^inversion\.steps=0: must be an integer >= 1$"):
        LatentOptimization(None, steps=0)
    with pytest.raises(ConfigValueError, match=r"^inversion\.restarts=1\.5: must be an integer"):
        LatentOptimization(None, restarts=1.5)


# ------------------------------------------------------------------ one place per default
def _probe_group(folder: Path) -> dict[str, Any]:
    """A model/loss option `probe` whose every value differs from conf/model/loss/invgan.yaml."""
    shared = yaml.safe_load((CONFIG_DIR / "model" / "loss" / "invgan.yaml").read_text())
    probe = {
        "_target_": shared["_target_"],
        "adversarial": "hinge" if shared["adversarial"] != "hinge" else "non_saturating",
        "adversarial_on_reconstructions": not shared["adversarial_on_reconstructions"],
        "feature_distance": "l2" if shared["feature_distance"] != "l2" else "l1",
        "pixel_distance": "l2" if shared["pixel_distance"] != "l2" else "l1",
        "mmd_bandwidths": [b * 3 for b in shared["mmd_bandwidths"]],
        "r1_interval": shared["r1_interval"] + 3,
    }
    for name, value in shared.items():
        if name.endswith(("_weight", "_gamma")):
            probe[name] = value + 0.375
    assert probe.keys() == shared.keys() and all(
        probe[k] != shared[k] for k in shared if k[0] != "_"
    )
    (folder / "model" / "loss").mkdir(parents=True)
    (folder / "model" / "loss" / "probe.yaml").write_text(yaml.safe_dump(probe))
    return probe


@pytest.mark.parametrize("model", INVGAN_MODELS)
def test_invgan_models_take_their_loss_defaults_from_the_shared_group(model, tmp_path):
    probe = _probe_group(tmp_path / "search")
    overrides = [
        f"model={model}",
        "model/loss=probe",
        f"hydra.searchpath=[file://{tmp_path}/search]",
    ]
    cfg = compose_config("train", overrides, tmp_path / "run")
    composed = OmegaConf.to_container(cfg.model.loss)
    # Every value is the group's, except those the model YAML changes on purpose.
    assert composed == {**probe, **INVGAN_MODEL_LOSS_CHANGES[model]}


@pytest.mark.parametrize(
    ("model", "config", "node"),
    [
        ("invgan_dcgan", InvGANLossConfig, "model.loss"),
        ("psp", PSPLossConfig, "model"),
        ("e4e", E4ELossConfig, "model"),
        ("indomain", InDomainLossConfig, "model"),
    ],
)
def test_dataclass_defaults_are_the_yaml_defaults(model, config, node, tmp_path):
    cfg = compose_config("train", [f"model={model}"], tmp_path)
    composed = OmegaConf.to_container(OmegaConf.select(cfg, node), resolve=False)
    defaults = dataclasses.asdict(config())
    assert {name: composed[name] for name in defaults} == {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in defaults.items()
    }
