"""In-domain encoder (IDInvert): W+ shapes, training against a frozen face generator, lazy R1,
and a train.py run whose checkpoint reloads to the same reconstructions."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from datamodules.celeba import CelebADataModule
from invgan.checkpoints.generator_import import load_frozen_generator
from invgan.checkpoints.keys import CONFIG_KEY
from invgan.evaluation.loading import build_model
from invgan.losses.perceptual import PerceptualDistance
from invgan.modules.indomain import InDomainEncoderModule
from invgan.nn.encoders.indomain import InDomainEncoder
from invgan.nn.frozen_generator import FrozenGenerator
from invgan.nn.stylegan2.discriminator import StyleGAN2Discriminator
from invgan.training.pipeline import train
from invgan.utils.images import to_signed_range
from tests.conftest import LPIPS_WEIGHTS, SHARED_DATA, TINY_MODELS, bare_cpu_trainer

FACES = SHARED_DATA / "faces"
# Tiny encoder and discriminator for the 16-px face generator; LPIPS at the images' own size
# (no upsampling) keeps a training step in milliseconds.
TINY_INDOMAIN = TINY_MODELS["InDomainEncoderModule"]


@pytest.fixture(scope="module")
def perceptual() -> PerceptualDistance:
    """LPIPS-VGG from the shared weights, shared by the modules built here (it is frozen)."""
    return PerceptualDistance("vgg", LPIPS_WEIGHTS["vgg"])


@pytest.fixture
def face_generator(face_generator_checkpoint: Path) -> FrozenGenerator:
    """The session's 16-px face StyleGAN2 (w_dim 16, 6 style inputs), frozen."""
    return load_frozen_generator(face_generator_checkpoint, resolution=16, channels=3)


def make_module(
    generator: FrozenGenerator, perceptual: PerceptualDistance, seed: int = 0, **options
) -> InDomainEncoderModule:
    """A seeded module with a tiny encoder and discriminator, Adam at 1e-3 for short runs."""
    torch.manual_seed(seed)
    adam = functools.partial(torch.optim.Adam, lr=1e-3, betas=(0.9, 0.99))
    return InDomainEncoderModule(
        generator,
        functools.partial(InDomainEncoder, base_width=16, max_width=32),
        StyleGAN2Discriminator(
            w_dim=1, resolution=16, channel_multiplier=1, channel_base=256, channel_max=16
        ),
        lambda: perceptual,
        adam,
        adam,
        **options,
    )


def faces_datamodule(batch_size: int) -> CelebADataModule:
    """The shared faces at 16 px, seeded split, set up."""
    datamodule = CelebADataModule(
        FACES, resolution=16, batch_size=batch_size, num_workers=0, seed=0
    )
    datamodule.setup()
    return datamodule


def validation_mae(module: InDomainEncoderModule, images: torch.Tensor) -> float:
    """Mean absolute reconstruction error of G(E(x)) with E in eval mode."""
    with torch.no_grad():
        return float((module.reconstruct(images) - images).abs().mean())


@pytest.mark.parametrize("resolution", [16, 32])
@pytest.mark.parametrize("n_latent", [6, 8])
def test_encoder_gives_one_code_per_generator_layer(resolution, n_latent):
    encoder = InDomainEncoder(resolution, n_latent, 16, base_width=4, max_width=8)
    codes = encoder(torch.randn(3, 3, resolution, resolution))
    assert codes.shape == (3, n_latent, 16)
    # One halving per block from the input side down to 4x4; widths double up to the cap.
    assert len(encoder.blocks) == {16: 2, 32: 3}[resolution]
    assert encoder.to_latent.in_features == 8 * 4 * 4
    with pytest.raises(ValueError, match="takes 16x16 images"):
        InDomainEncoder(16, n_latent, 16)(torch.randn(1, 3, 32, 32))


def test_training_lowers_mae_and_trains_only_encoder_and_discriminator(face_generator, perceptual):
    module = make_module(face_generator, perceptual)
    datamodule = faces_datamodule(batch_size=8)
    val = to_signed_range(torch.stack([datamodule.val_dataset[i] for i in range(64)]))
    generator_before = copy.deepcopy(module.generator.state_dict())
    d_before = copy.deepcopy(module.discriminator.state_dict())
    mae_before = validation_mae(module, val)

    iterations = 60
    bare_cpu_trainer(max_steps=2 * iterations, limit_val_batches=0).fit(module, datamodule)

    assert int(module.iteration) == iterations
    assert validation_mae(module, val) < 0.85 * mae_before
    assert all(p.grad is None and not p.requires_grad for p in module.generator.parameters())
    generator_after = module.generator.state_dict()
    assert generator_after.keys() == generator_before.keys()
    assert all(torch.equal(generator_before[k], v) for k, v in generator_after.items())
    assert any(
        not torch.equal(d_before[k], v) for k, v in module.discriminator.state_dict().items()
    )


def test_r1_penalty_enters_the_discriminator_loss_on_its_interval(face_generator, perceptual):
    val_dataset = faces_datamodule(batch_size=4).val_dataset
    loader = DataLoader(torch.stack([val_dataset[i] for i in range(4)]), batch_size=4)

    def discriminator_after_one_iteration(r1_gamma: float, start: int) -> dict:
        module = make_module(face_generator, perceptual, r1_gamma=r1_gamma, r1_interval=2)
        module.iteration.fill_(start)
        torch.manual_seed(1)
        bare_cpu_trainer(max_steps=2).fit(module, loader)
        return module.discriminator.state_dict()

    def same(first: dict, second: dict) -> bool:
        return all(torch.equal(first[k], second[k]) for k in first)

    # Iteration 0 is an R1 iteration: the penalty's weight changes D's update. Iteration 1 is
    # not: D's update is exactly the one without any penalty.
    assert not same(
        discriminator_after_one_iteration(0.0, 0), discriminator_after_one_iteration(1e3, 0)
    )
    assert same(
        discriminator_after_one_iteration(0.0, 1), discriminator_after_one_iteration(1e3, 1)
    )

    # What each training step logs (Lightning's own logged metrics keep earlier steps' keys).
    module = make_module(face_generator, perceptual, r1_interval=2)
    logged: list[dict[str, torch.Tensor]] = []
    log_dict = module.log_dict

    def recording_log_dict(metrics: dict[str, torch.Tensor], **options) -> None:
        logged.append(metrics)
        log_dict(metrics, **options)

    module.log_dict = recording_log_dict
    bare_cpu_trainer(max_steps=8).fit(module, loader)
    assert [("train/loss_r1" in step) for step in logged] == [True, False, True, False]
    assert all(step["train/loss_r1"] > 0 for step in logged[::2])
    expected = {"train/loss_pixel", "train/loss_perceptual", "train/loss_g_adv", "train/mae"}
    assert all(expected | {"train/loss_d_adv"} <= step.keys() for step in logged)


def test_train_run_checkpoint_reloads_to_identical_reconstructions(
    train_config, face_generator_checkpoint
):
    cfg = train_config(
        "experiment=celeba_indomain",
        f"model.generator.path={face_generator_checkpoint}",
        f"data.root={FACES}",
        "data.resolution=16",
        "data.batch_size=4",
        "data.eval_batch_size=8",
        "debug=fdr",
        *TINY_INDOMAIN,
        tiny=False,
    )
    metrics = train(cfg)
    assert {"train/loss_g_adv", "train/loss_r1", "test/mae"} <= metrics.keys()

    checkpoint = torch.load(
        Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True
    )
    # E, D and the frozen G; LPIPS is rebuilt from config, not saved.
    networks = {key.split(".")[0] for key in checkpoint["state_dict"]}
    assert networks == {"encoder", "discriminator", "generator", "iteration"}
    model = hydra.utils.instantiate(cfg.model).eval()
    model.load_state_dict(checkpoint["state_dict"])
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup()
    images = to_signed_range(torch.stack([datamodule.test_dataset[i] for i in range(8)]))
    with torch.no_grad():
        reconstruction = model.reconstruct(images)
    # The checkpoint holds the weights that produced the run's own test MAE (one test batch).
    assert float((reconstruction - images).abs().mean()) == pytest.approx(
        metrics["test/mae"], rel=1e-5
    )
    # Evaluation rebuilds the frozen generator from the checkpoint alone, not from its file.
    run_cfg = OmegaConf.create(checkpoint[CONFIG_KEY])
    rebuilt = build_model(run_cfg, checkpoint, OmegaConf.create({}))
    with torch.no_grad():
        assert torch.equal(rebuilt.reconstruct(images), reconstruction)
