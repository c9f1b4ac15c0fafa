"""e4e: the delta regulariser and the latent discriminator's losses against hand computations,
the progressive schedule against e4e's step list, and a short training on real faces that
improves reconstructions, trains only the encoder and the latent discriminator, and writes a
checkpoint that evaluate.py's loader rebuilds."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from invgan.checkpoints.format import load_checkpoint
from invgan.checkpoints.keys import CONFIG_KEY, E4E_W_POOLS_KEY
from invgan.evaluation.loading import build_model
from invgan.modules.e4e import E4EModule, active_offsets, delta_regularization
from invgan.nn.latent_discriminator import LatentDiscriminator
from invgan.training.pipeline import train
from invgan.utils.config_checks import ConfigValueError
from invgan.utils.images import to_signed_range
from invgan.utils.instantiate import instantiate_datamodule
from tests.conftest import SHARED_DATA, TINY_MODELS, bare_cpu_trainer

TINY_E4E = [
    "experiment=celeba_e4e",
    f"data.root={SHARED_DATA / 'faces'}",
    "data.resolution=16",
    "data.batch_size=8",
    "data.eval_batch_size=50",
    *TINY_MODELS["E4EModule"],
]


def _model(train_config, generator: Path, *overrides: str) -> E4EModule:
    cfg = train_config(*TINY_E4E, f"model.generator.path={generator}", *overrides, tiny=False)
    return hydra.utils.instantiate(cfg.model)


# ---------------------------------------------------------------- delta regulariser
def test_delta_regularization_matches_a_hand_computation():
    # Two images, four layers of 2-d codes: deltas from layer 0 with known lengths.
    codes = torch.tensor(
        [
            [[1.0, 1.0], [4.0, 5.0], [1.0, 0.0], [9.0, 9.0]],
            [[0.0, 0.0], [0.0, 2.0], [6.0, 8.0], [-9.0, 9.0]],
        ]
    )
    # Three active offsets: e4e sums offsets 1 and 2 (the newest, 3, joins one stage later).
    # Offset 1: lengths 5 (3-4-5) and 2; offset 2: lengths 1 and 10; batch means 3.5 and 5.5.
    assert float(delta_regularization(codes, 3)) == pytest.approx(3.5 + 5.5)
    assert float(delta_regularization(codes, 2)) == pytest.approx(3.5)
    assert float(delta_regularization(codes, 1)) == 0.0
    assert float(delta_regularization(codes, 0)) == 0.0
    # The same by a loop over images and layers, on random codes.
    codes = torch.randn(3, 6, 5)
    expected = sum(
        math.sqrt(sum((codes[n, i, d] - codes[n, 0, d]).item() ** 2 for d in range(5))) / 3
        for i in range(1, 4)
        for n in range(3)
    )
    assert float(delta_regularization(codes, 4)) == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------- progressive schedule
@pytest.mark.parametrize(("start", "interval", "n_latent"), [(20000, 2000, 18), (3, 2, 6)])
def test_progressive_schedule_follows_e4es_step_list(start, interval, n_latent):
    # e4e's train.py: progressive_steps = [0, start, start + interval, ...], one per offset;
    # reaching steps[i] sets stage i, and at stage i the encoder adds offsets 1..i.
    steps = [0] + [start + i * interval for i in range(n_latent - 1)]
    stage = 0
    for iteration in range(steps[-1] + 3 * interval):
        if iteration in steps:
            stage = steps.index(iteration)
        assert active_offsets(iteration, start, interval, n_latent) == stage, iteration
    assert stage == n_latent - 1
    assert active_offsets(0, None, interval, n_latent) == n_latent - 1


def test_inactive_layers_decode_the_base_code(face_generator_checkpoint, train_config):
    model = _model(train_config, face_generator_checkpoint)
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    n_latent = model.generator.n_latent
    with torch.no_grad():
        full = model.encoder.eval()(images) + model.generator.latent_avg
        for iteration, used in [(0, 1), (1, 1), (2, 2), (3, 2), (4, 3), (100, n_latent)]:
            model.iteration.fill_(iteration)
            model.load_state_dict(model.state_dict())  # the host re-reads the counter
            codes = model.encode(images)
            assert torch.equal(codes[:, :used], full[:, :used]), iteration
            assert torch.equal(codes[:, used:], full[:, :1].expand_as(codes[:, used:]))


# ---------------------------------------------------------------- latent discriminator
def _two_layer_discriminator() -> LatentDiscriminator:
    discriminator = LatentDiscriminator(w_dim=2, hidden_width=2, num_layers=2)
    first, last = discriminator.mlp[0], discriminator.mlp[2]
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 1.0]]))
        first.bias.copy_(torch.tensor([0.5, -1.0]))
        last.weight.copy_(torch.tensor([[2.0, -1.0]]))
        last.bias.copy_(torch.tensor([0.25]))
    return discriminator


def _by_hand(w: list[float]) -> tuple[float, list[float]]:
    """D(w) and dD/dw of the two-layer MLP above, written out."""
    leaky = [lambda x: x if x > 0 else 0.2 * x, lambda x: 1.0 if x > 0 else 0.2]
    pre = [w[0] - 2 * w[1] + 0.5, 0.5 * w[0] + w[1] - 1.0]
    logit = 2 * leaky[0](pre[0]) - 1 * leaky[0](pre[1]) + 0.25
    slopes = [2 * leaky[1](pre[0]), -1 * leaky[1](pre[1])]
    grad = [slopes[0] * 1.0 + slopes[1] * 0.5, slopes[0] * -2.0 + slopes[1] * 1.0]
    return logit, grad


def test_latent_discriminator_losses_match_a_hand_computation(
    face_generator_checkpoint, train_config
):
    # Without the pools (tests/test_latent_pool.py): D judges exactly these codes.
    model = _model(train_config, face_generator_checkpoint, "model.w_pool_size=0")
    model.discriminator = _two_layer_discriminator()
    # A stand-in mapping with 2-d codes, so the hand computation stays small.
    mapping = torch.tensor([[1.0, 0.0], [-1.0, 2.0], [0.5, 0.5]])
    model.generator.map = lambda z: z[:, :3] @ mapping
    fake = torch.tensor([[0.3, -0.7], [2.0, 1.0]])

    torch.manual_seed(3)
    z = torch.randn(2, model.generator.z_dim)
    real = (z[:, :3] @ mapping).tolist()
    torch.manual_seed(3)
    losses = model.discriminator_losses(fake, apply_r1=True)

    def softplus(x: float) -> float:
        return math.log1p(math.exp(x))

    real_hand = [_by_hand(w) for w in real]
    fake_logits = [_by_hand(w)[0] for w in fake.tolist()]
    d_adv = sum(softplus(-logit) for logit, _ in real_hand) / 2
    d_adv += sum(softplus(logit) for logit in fake_logits) / 2
    r1 = sum(g[0] ** 2 + g[1] ** 2 for _, g in real_hand) / 2
    assert float(losses["d_adv"].detach()) == pytest.approx(d_adv, rel=1e-5)
    assert float(losses["r1"].detach()) == pytest.approx(r1, rel=1e-5)
    assert "r1" not in model.discriminator_losses(fake, apply_r1=False)

    # The encoder's term: softplus(-D(w_i)) averaged over the base code and active layers.
    codes = torch.tensor(
        [[[0.3, -0.7], [1.0, 1.0], [5.0, 5.0]], [[2.0, 1.0], [0.0, -1.0], [9, 9]]]
    )
    model.loss_weights = {"l2": 1.0}
    images = torch.zeros(2, 3, 4, 4)
    terms = model.encoder_losses(images, images, codes, offsets=1)
    w_adv = sum(softplus(-_by_hand(codes[n, i].tolist())[0]) for n in range(2) for i in range(2))
    assert float(terms["w_adv"]) == pytest.approx(w_adv / 4, rel=1e-5)
    assert float(terms["delta"]) == 0.0  # one active offset: the newest is not yet summed


def test_with_pools_d_sees_one_active_layer_per_image(face_generator_checkpoint, train_config):
    model = _model(train_config, face_generator_checkpoint)
    codes = torch.arange(4 * 5 * 2, dtype=torch.float32).reshape(4, 5, 2)
    torch.manual_seed(0)
    picked = torch.stack([model.fake_codes(codes, offsets=1) for _ in range(50)])
    # Each image's code is its base code or its one active offset, and both occur.
    is_layer = [(picked == codes[:, layer]).all(dim=-1) for layer in range(5)]
    assert bool((is_layer[0] | is_layer[1]).all())
    assert bool(is_layer[0].any()) and bool(is_layer[1].any())
    without = _model(train_config, face_generator_checkpoint, "model.w_pool_size=0")
    assert torch.equal(without.fake_codes(codes, offsets=1), codes[:, 0])


def test_bad_e4e_settings_are_refused_naming_the_key(face_generator_checkpoint, train_config):
    with pytest.raises(Exception, match="model.progressive_start=-1"):
        _model(train_config, face_generator_checkpoint, "model.progressive_start=-1")
    with pytest.raises(Exception, match="model.w_pool_size=-1"):
        _model(train_config, face_generator_checkpoint, "model.w_pool_size=-1")
    with pytest.raises(Exception, match="model.encoder.architecture=e4e"):
        _model(train_config, face_generator_checkpoint, "model.encoder.architecture=psp")
    with pytest.raises(ConfigValueError, match="model.discriminator.num_layers=0"):
        LatentDiscriminator(w_dim=4, num_layers=0)


# ---------------------------------------------------------------- training
def _reconstruction_mae(model: E4EModule, images: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model.reconstruct(images) - images).abs().mean())


def test_training_improves_reconstructions_and_trains_only_encoder_and_discriminator(
    face_generator_checkpoint, train_config
):
    model = _model(train_config, face_generator_checkpoint)
    model.optimizer = partial(torch.optim.Adam, lr=1e-3)  # a faster start than e4e's 1e-4
    model.optimizer_d = partial(torch.optim.Adam, lr=1e-3)
    cfg = train_config(*TINY_E4E, f"model.generator.path={face_generator_checkpoint}", tiny=False)
    datamodule = instantiate_datamodule(cfg.data)
    datamodule.setup()
    val = to_signed_range(torch.stack([datamodule.val_dataset[i] for i in range(64)]))
    generator_before = {k: v.clone() for k, v in model.generator.state_dict().items()}
    discriminator_before = [p.detach().clone() for p in model.discriminator.parameters()]
    mae_before = _reconstruction_mae(model, val)

    trainer = bare_cpu_trainer(
        max_steps=60, limit_val_batches=0, num_sanity_val_steps=0, log_every_n_steps=1
    )
    trainer.fit(model, datamodule=datamodule)

    assert int(model.iteration) == 30  # two optimizer steps per iteration
    assert model.active_offsets() == model.generator.n_latent - 1
    assert _reconstruction_mae(model, val) < 0.9 * mae_before
    assert all(p.grad is None for p in model.generator.parameters())
    after = model.generator.state_dict()
    assert all(torch.equal(after[k], v) for k, v in generator_before.items())
    encoder_opt, discriminator_opt = (
        {id(p) for group in opt.param_groups for p in group["params"]}
        for opt in trainer.optimizers
    )
    assert encoder_opt == {id(p) for p in model.encoder.parameters()}
    assert discriminator_opt == {id(p) for p in model.discriminator.parameters()}
    changed = [
        not torch.equal(p, before)
        for p, before in zip(model.discriminator.parameters(), discriminator_before, strict=True)
    ]
    assert all(changed)
    logged = trainer.callback_metrics
    for name in ("l2", "lpips", "delta", "w_adv", "d_adv"):
        assert torch.isfinite(logged[f"train/loss_{name}"]), name
    assert float(logged["train/loss_delta"]) > 0
    assert float(logged["train/active_offsets"]) == model.generator.n_latent - 1
    weights = {"l2": 1.0, "lpips": 0.8, "delta": 2e-4, "w_adv": 0.1}
    total = sum(w * float(logged[f"train/loss_{name}"]) for name, w in weights.items())
    assert float(logged["train/loss"]) == pytest.approx(total, rel=1e-5)


def test_train_py_run_writes_a_checkpoint_that_reloads(face_generator_checkpoint, train_config):
    cfg = train_config(
        *TINY_E4E, f"model.generator.path={face_generator_checkpoint}", "debug=fdr", tiny=False
    )
    metrics = train(cfg)
    assert {"train/loss", "train/loss_delta", "train/loss_d_adv", "test/mae"} <= set(metrics)

    checkpoint = load_checkpoint(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")
    state = checkpoint["state_dict"]
    parts = {"generator", "encoder", "discriminator", "iteration"}
    assert {k.split(".")[0] for k in state} == parts
    # One discriminator step of batch 8: both pools hold its 8 codes, and a resumed module
    # takes them back.
    pools = checkpoint[E4E_W_POOLS_KEY]
    assert {name: pool["codes"].shape for name, pool in pools.items()} == {
        "real": (8, 16),
        "fake": (8, 16),
    }
    resumed = hydra.utils.instantiate(cfg.model)
    resumed.on_load_checkpoint(checkpoint)
    assert all(torch.equal(resumed.w_pools[n].codes[:8], pools[n]["codes"]) for n in pools)
    run_cfg = OmegaConf.create(checkpoint[CONFIG_KEY])
    run_cfg.model.generator.path = "/nonexistent/generator.pt"
    reloaded = build_model(run_cfg, checkpoint, OmegaConf.create({}))
    assert isinstance(reloaded, E4EModule)
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    original = hydra.utils.instantiate(cfg.model)
    original.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(reloaded.reconstruct(images), original.eval().reconstruct(images))
