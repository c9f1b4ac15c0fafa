"""pSp: encoder shapes, the IR-SE50 trunk against a hand count, training into a frozen generator
on real faces, the ArcFace identity loss, and a train.py run whose checkpoint reloads."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from invgan.checkpoints.format import load_checkpoint
from invgan.checkpoints.keys import CONFIG_KEY
from invgan.checkpoints.psp_checkpoint import build_psp_encoder
from invgan.evaluation.loading import build_model
from invgan.losses.identity import ArcFace, IdentityLoss
from invgan.modules.psp import PSPModule
from invgan.nn.encoders.ir_se import IRBody
from invgan.nn.encoders.psp import psp_encoder
from invgan.training.pipeline import train
from invgan.utils.images import to_signed_range
from invgan.utils.instantiate import instantiate_datamodule
from tests.conftest import SHARED_DATA, TINY_MODELS, bare_cpu_trainer

FACES = SHARED_DATA / "faces"
TINY_TRUNK = {"blocks": [1, 1, 1, 1], "base_width": 8}
# The overrides that shrink experiment=celeba_psp to the 16-px test generator.
TINY_PSP = [
    "experiment=celeba_psp",
    f"data.root={FACES}",
    "data.resolution=16",
    "data.batch_size=8",
    "data.eval_batch_size=50",
    *TINY_MODELS["PSPModule"],
]


# ---------------------------------------------------------------- encoder networks
@pytest.mark.parametrize("resolution", [16, 32])
@pytest.mark.parametrize("n_latent", [6, 10])
def test_encoder_outputs_w_plus_or_one_w(resolution, n_latent):
    images = torch.randn(3, 3, resolution, resolution)
    w_plus = psp_encoder(resolution, 3, 16, n_latent, **TINY_TRUNK)
    assert w_plus(images).shape == (3, n_latent, 16)
    # Heads read the map of their level: the coarsest is 1/16 of the side, then 1/8, then 1/4.
    sides = [resolution // 16] * w_plus.coarse_end
    sides += [resolution // 8] * (w_plus.medium_end - w_plus.coarse_end)
    sides += [resolution // 4] * (n_latent - w_plus.medium_end)
    convs = [sum(isinstance(m, torch.nn.Conv2d) for m in head.convs) for head in w_plus.styles]
    assert convs == [max(1, side.bit_length() - 1) for side in sides]

    w = psp_encoder(resolution, 3, 16, n_latent, learn_in_w=True, **TINY_TRUNK)
    assert w(images).shape == (3, 16)


def test_style_split_scales_the_papers_and_takes_overrides():
    # pSp: 3 coarse and 4 medium of 18; 6 inputs (16 px) and 10 (64 px) scale that split.
    paper = psp_encoder(16, 3, 8, 18, **TINY_TRUNK)
    assert (paper.coarse_end, paper.medium_end) == (3, 7)
    tiny = psp_encoder(16, 3, 8, 6, **TINY_TRUNK)
    assert (tiny.coarse_end, tiny.medium_end) == (1, 2)
    larger = psp_encoder(16, 3, 8, 10, **TINY_TRUNK)
    assert (larger.coarse_end, larger.medium_end) == (2, 4)
    custom = psp_encoder(16, 3, 8, 6, coarse_end=2, medium_end=4, **TINY_TRUNK)
    assert (custom.coarse_end, custom.medium_end) == (2, 4)
    with pytest.raises(ValueError, match="learn_in_w"):
        psp_encoder(16, 3, 8, 2, **TINY_TRUNK)
    with pytest.raises(ValueError, match="power of two"):
        psp_encoder(24, 3, 8, 6, **TINY_TRUNK)


def _unit_parameters(in_channels: int, out_channels: int) -> int:
    """An IR-SE unit counted by hand: BN, 3x3 conv, PReLU, 3x3 conv, BN, SE (two bias-free
    1x1 convs through out/16 channels), and a 1x1 conv + BN shortcut when the width grows."""
    residual = 2 * in_channels + 9 * in_channels * out_channels + out_channels
    residual += 9 * out_channels**2 + 2 * out_channels + 2 * out_channels * (out_channels // 16)
    shortcut = 0 if in_channels == out_channels else in_channels * out_channels + 2 * out_channels
    return residual + shortcut


def test_ir_se50_body_matches_a_hand_count():
    body = IRBody(depth=50, mode="ir_se")
    stages = [(64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3)]
    expected = sum(
        _unit_parameters(cin, cout) + (units - 1) * _unit_parameters(cout, cout)
        for cin, cout, units in stages
    )
    assert len(body) == 3 + 4 + 14 + 3
    assert sum(p.numel() for p in body.parameters()) == expected
    strided = [i for i, unit in enumerate(body) if unit.res_layer[3].stride == (2, 2)]
    assert strided == [0, 3, 7, 21]
    # ArcFace's 112-px faces leave 7x7 maps of 512 channels for its output layer.
    with torch.no_grad():
        assert body.eval()(torch.randn(1, 64, 112, 112)).shape == (1, 512, 7, 7)


# ---------------------------------------------------------------- training
def _reconstruction_mae(model: PSPModule, images: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model.reconstruct(images) - images).abs().mean())


def test_training_improves_reconstructions_and_leaves_the_generator_alone(
    face_generator_checkpoint, train_config
):
    cfg = train_config(*TINY_PSP, f"model.generator.path={face_generator_checkpoint}", tiny=False)
    model = hydra.utils.instantiate(cfg.model)
    model.optimizer = partial(torch.optim.Adam, lr=1e-3)  # a faster start than pSp's 1e-4
    datamodule = instantiate_datamodule(cfg.data)
    datamodule.setup()
    val = to_signed_range(torch.stack([datamodule.val_dataset[i] for i in range(64)]))
    generator_before = {k: v.clone() for k, v in model.generator.state_dict().items()}
    mae_before = _reconstruction_mae(model, val)

    trainer = bare_cpu_trainer(max_steps=30, limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=datamodule)

    assert int(model.iteration) == 30
    assert _reconstruction_mae(model, val) < 0.9 * mae_before
    assert all(p.grad is None for p in model.generator.parameters())
    after = model.generator.state_dict()
    assert all(torch.equal(after[k], v) for k, v in generator_before.items())
    optimized = [p for group in trainer.optimizers[0].param_groups for p in group["params"]]
    assert {id(p) for p in optimized} == {id(p) for p in model.encoder.parameters()}
    logged = trainer.callback_metrics
    for name in ("train/loss_l2", "train/loss_lpips", "train/loss", "train/mae"):
        assert torch.isfinite(logged[name]), name
    assert logged["train/loss"] == pytest.approx(
        float(logged["train/loss_l2"] + 0.8 * logged["train/loss_lpips"]), rel=1e-5
    )


def test_learn_in_w_decodes_one_code_and_regularises_its_offset(
    face_generator_checkpoint, train_config
):
    cfg = train_config(
        *TINY_PSP,
        f"model.generator.path={face_generator_checkpoint}",
        "model.learn_in_w=true",
        "model.w_norm_weight=0.01",
        tiny=False,
    )
    model = hydra.utils.instantiate(cfg.model)
    real = _faces(2, 16)
    codes = model.encode(real)
    assert codes.shape == (2, 16) and model.decode(codes).shape == real.shape
    with torch.no_grad():
        offsets = model.encoder.eval()(real)
        # pSp's regulariser: the distance of each code from the average latent, batch mean.
        assert torch.allclose(codes, offsets + model.generator.latent_avg)
        expected = sum(float(torch.sqrt((o**2).sum())) for o in offsets) / 2
        assert float(model.w_norm(codes)) == pytest.approx(expected, rel=1e-5)
        assert set(model.losses(real, model.decode(codes), codes)) == {"l2", "lpips", "w_norm"}


# ---------------------------------------------------------------- identity loss
@pytest.fixture(scope="module")
def arcface_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised IR-SE50 ArcFace saved as a model_ir_se50.pth-style state dict."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("arcface") / "model_ir_se50.pth"
    torch.save(ArcFace().state_dict(), path)
    return path


def _faces(count: int, side: int) -> torch.Tensor:
    from datamodules.celeba import CelebADataset

    paths = sorted(FACES.iterdir())[:count]
    return to_signed_range(torch.stack(list(CelebADataset(paths, side, 3, crop_size=140))))


def test_identity_loss_compares_face_embeddings(arcface_file):
    saved = torch.load(arcface_file, weights_only=True)
    names = {"input_layer.2.weight", "body.0.res_layer.5.fc1.weight", "output_layer.4.bias"}
    assert names <= set(saved) and saved["output_layer.3.weight"].shape == (512, 512 * 7 * 7)
    loss = IdentityLoss(arcface_file, crop_fraction=0.5)
    assert all(torch.equal(loss.net.state_dict()[k], v) for k, v in saved.items())
    assert not loss.train().training

    face, other = _faces(2, 64).split(1)
    # Only the centred half of the side is compared: a changed border costs nothing.
    framed = other.clone()
    framed[..., 16:48, 16:48] = face[..., 16:48, 16:48]
    with torch.no_grad():
        assert float(loss(face, face)) == pytest.approx(0.0, abs=1e-6)
        assert float(loss(face, other)) > 1e-3
        assert float(loss(face, framed)) == pytest.approx(0.0, abs=1e-6)


def test_identity_loss_names_a_missing_weights_file(tmp_path):
    missing = tmp_path / "nowhere" / "model_ir_se50.pth"
    with pytest.raises(FileNotFoundError, match="nowhere/model_ir_se50.pth"):
        IdentityLoss(missing)
    with pytest.raises(FileNotFoundError, match="INVGAN_ARCFACE_WEIGHTS"):
        IdentityLoss(None)


def test_arcface_weights_start_the_encoder_trunk(arcface_file):
    encoder = build_psp_encoder(16, 3, 16, 6, backbone_weights=arcface_file)
    saved = torch.load(arcface_file, weights_only=True)
    trunk = {
        k: v for k, v in encoder.state_dict().items() if k.startswith(("input_layer", "body"))
    }
    assert len(trunk) > 100 and all(torch.equal(v, saved[k]) for k, v in trunk.items())
    with pytest.raises(RuntimeError, match="does not fit this trunk"):
        build_psp_encoder(16, 3, 16, 6, backbone_weights=arcface_file, **TINY_TRUNK)


def test_identity_loss_trains_the_encoder(face_generator_checkpoint, train_config, arcface_file):
    cfg = train_config(
        *TINY_PSP,
        f"model.generator.path={face_generator_checkpoint}",
        "model.id_weight=0.1",
        f"model.identity.weights_path={arcface_file}",
        "model.lpips_weight=0",
        tiny=False,
    )
    model = hydra.utils.instantiate(cfg.model)
    real = _faces(2, 16)  # batch norm in training mode needs two images at a 1x1 map
    codes = model.codes_from_encoder(real)
    losses = model.losses(real, model.decode(codes), codes)
    assert set(losses) == {"l2", "id"} and 0 < float(losses["id"].detach()) <= 2
    losses["id"].backward()
    assert model.encoder.styles[0].linear.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.generator.parameters())
    # ArcFace is a loss network, not part of the model's weights.
    assert {k.split(".")[0] for k in model.state_dict()} == {"generator", "encoder", "iteration"}


# ---------------------------------------------------------------- train.py
def test_train_py_run_writes_a_checkpoint_that_reloads(face_generator_checkpoint, train_config):
    cfg = train_config(
        *TINY_PSP,
        f"model.generator.path={face_generator_checkpoint}",
        "debug=fdr",
        tiny=False,
    )
    metrics = train(cfg)
    assert {"train/loss", "train/loss_l2", "train/loss_lpips", "test/mae"} <= set(metrics)

    checkpoint = load_checkpoint(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")
    state = checkpoint["state_dict"]
    assert {k.split(".")[0] for k in state} == {"generator", "encoder", "iteration"}
    # evaluate.py's path rebuilds the generator from the checkpoint alone (no weights file).
    run_cfg = OmegaConf.create(checkpoint[CONFIG_KEY])
    run_cfg.model.generator.path = "/nonexistent/generator.pt"
    reloaded = build_model(run_cfg, checkpoint, OmegaConf.create({}))
    original = hydra.utils.instantiate(cfg.model)
    original.load_state_dict(state)

    datamodule = instantiate_datamodule(cfg.data)
    datamodule.setup()
    # fast_dev_run tests on the first test batch.
    test = to_signed_range(next(iter(datamodule.test_dataloader())))
    with torch.no_grad():
        reconstructions = reloaded.reconstruct(test)
        assert torch.equal(reconstructions, original.eval().reconstruct(test))
    mae = float((reconstructions - test).abs().mean())
    assert mae == pytest.approx(metrics["test/mae"], rel=1e-5)
