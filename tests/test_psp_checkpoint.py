"""pSp and e4e checkpoints, built here in the layout their training code saves
(`{"state_dict": pSp.state_dict(), "opts": vars(opts), "latent_avg": ...}`), load into our
encoder and generator through `model.encoder.path` and `encoder_path=`, and decode exactly as
the original networks do; files that do not fit are refused with the value to set."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import hydra
import pytest
import torch
import torch.nn.functional as F
from hydra.errors import InstantiationException
from torch import nn

from invgan.checkpoints.format import CheckpointError
from invgan.checkpoints.generator_import import load_frozen_generator
from invgan.checkpoints.psp_checkpoint import read_psp_checkpoint
from invgan.cli.apply import apply
from invgan.evaluation.loading import load_model_and_data
from invgan.evaluation.pretrained_encoder import load_pretrained_encoder_model
from invgan.nn.encoders.psp import GradualStyleEncoder, WEncoder
from invgan.nn.stylegan2.generator import StyleGAN2Generator
from tests.conftest import SHARED_DATA, compose_config

RESOLUTION, W_DIM = 32, 16
N_LATENT = 2 * 5 - 2  # 8 style inputs at 32 px: pSp's split 3 / 7 leaves one fine head
DECODER = {"w_dim": W_DIM, "n_mlp": 2, "channel_multiplier": 2, "channel_base": 128}
TRUNK = {"blocks": [1, 1, 1, 1], "base_width": 8}
ENCODER_TYPES = {
    "GradualStyleEncoder": GradualStyleEncoder,
    "Encoder4Editing": GradualStyleEncoder,  # e4e's network; only its forward differs
    "BackboneEncoderUsingLastLayerIntoW": WEncoder,
}


def _randomize_batch_norms(module: nn.Module) -> None:
    """Non-trivial running statistics, so eval-mode batch norm matters."""
    for layer in module.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.running_mean.uniform_(-0.2, 0.2)
            layer.running_var.uniform_(0.5, 1.5)


def _psp_file(
    path: Path, encoder_type: str, **opts
) -> tuple[nn.Module, StyleGAN2Generator, torch.Tensor]:
    """A checkpoint as pixel2style2pixel / encoder4editing save it; returns the source
    encoder (its pSp-style heads), decoder and average latent."""
    torch.manual_seed(0)
    learn_in_w = encoder_type == "BackboneEncoderUsingLastLayerIntoW"
    if learn_in_w:
        encoder = WEncoder(RESOLUTION, 3, W_DIM, **TRUNK)
    else:
        encoder = GradualStyleEncoder(RESOLUTION, 3, W_DIM, N_LATENT, 3, 7, **TRUNK)
    _randomize_batch_norms(encoder)
    decoder = StyleGAN2Generator(resolution=RESOLUTION, **DECODER)
    latent_avg = torch.randn(W_DIM)
    state = OrderedDict()
    state.update((f"encoder.{k}", v) for k, v in encoder.state_dict().items())
    state.update((f"decoder.{k}", v) for k, v in decoder.state_dict().items())
    # Names of the original modules (pSp's psp_encoders.py, rosinality's model.py).
    expected = ["encoder.input_layer.1.running_mean", "encoder.body.0.res_layer.5.fc1.weight"]
    expected += ["decoder.style.1.weight", "decoder.convs.0.conv.weight", "decoder.noises.noise_0"]
    if not learn_in_w:
        expected += ["encoder.latlayer1.weight", "encoder.styles.7.convs.4.weight"]
    assert all(name in state for name in expected)
    options = {
        "encoder_type": encoder_type,
        "input_nc": 3,
        "label_nc": 0,
        "learn_in_w": learn_in_w,
        "start_from_latent_avg": True,
        "output_size": RESOLUTION,
        "dataset_type": "ffhq_encode",
        "checkpoint_path": None,
        **opts,
    }
    repeats = 1 if learn_in_w else N_LATENT
    torch.save(
        {"state_dict": state, "opts": options, "latent_avg": latent_avg.repeat(repeats, 1)}, path
    )
    return encoder.eval(), decoder.eval(), latent_avg


def _original_codes(encoder_type: str, encoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """What pSp's / e4e's encoder returns (before the average latent is added)."""
    if encoder_type == "BackboneEncoderUsingLastLayerIntoW":
        # Its size is not in the weights: inputs are resized to pSp's 256 px.
        images = F.interpolate(images, size=(256, 256), mode="bilinear", antialias=True)
    codes = encoder(images)
    if encoder_type == "Encoder4Editing":
        # e4e: w0 from the first head for every input, each later head adds its delta.
        w0 = codes[:, 0]
        codes = torch.stack([w0] + [w0 + codes[:, i] for i in range(1, N_LATENT)], dim=1)
    return codes


def _images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(5)
    return torch.rand(2, 3, RESOLUTION, RESOLUTION, generator=generator) * 2 - 1


@pytest.mark.parametrize("encoder_type", list(ENCODER_TYPES))
def test_checkpoint_reconstructs_as_the_original(tmp_path, encoder_type):
    path = tmp_path / "psp.pt"
    encoder, decoder, latent_avg = _psp_file(path, encoder_type)
    model = load_pretrained_encoder_model(path, resolution=RESOLUTION, channels=3)
    images = _images()
    with torch.no_grad():
        codes = _original_codes(encoder_type, encoder, images) + latent_avg
        assert torch.equal(model.encode(images), codes)
        assert torch.equal(model.reconstruct(images), decoder(codes))
    assert torch.equal(model.generator.latent_avg, latent_avg)
    assert model.learn_in_w == (encoder_type == "BackboneEncoderUsingLastLayerIntoW")


def test_model_encoder_path_builds_the_training_recipe_from_the_file(tmp_path):
    path = tmp_path / "e4e.pt"
    encoder, decoder, latent_avg = _psp_file(path, "Encoder4Editing")
    overrides = [
        "experiment=celeba_psp",
        f"data.root={SHARED_DATA / 'faces'}",
        f"data.resolution={RESOLUTION}",
        f"model.encoder.path={path}",
        "trainer.accelerator=cpu",
    ]
    cfg = compose_config("train", overrides, tmp_path / "run")
    model = hydra.utils.instantiate(cfg.model)  # generator: the same file's decoder
    images = _images()
    with torch.no_grad():
        expected = decoder(_original_codes("Encoder4Editing", encoder, images) + latent_avg)
        assert torch.equal(model.eval().reconstruct(images), expected)

    cfg = compose_config("train", [*overrides, "model.start_from_latent_avg=false"], tmp_path)
    # Hydra wraps the errors of the objects it builds; the message is kept.
    with pytest.raises(InstantiationException, match="set model.start_from_latent_avg=true"):
        hydra.utils.instantiate(cfg.model)
    cfg = compose_config("train", [*overrides, "model.encoder_resolution=64"], tmp_path)
    with pytest.raises(InstantiationException, match=f"model.encoder_resolution={RESOLUTION}"):
        hydra.utils.instantiate(cfg.model)


def test_evaluate_encoder_path_and_decoder_as_generator(tmp_path):
    path = tmp_path / "psp.pt"
    _, decoder, latent_avg = _psp_file(path, "GradualStyleEncoder")
    cfg = compose_config(
        "evaluate",
        [
            f"encoder_path={path}",
            "data=celeba",
            f"data.root={SHARED_DATA / 'faces'}",
            f"data.resolution={RESOLUTION}",
        ],
        tmp_path / "eval",
    )
    model, data_cfg, source = load_model_and_data(cfg, torch.device("cpu"))
    assert source == str(path) and data_cfg.resolution == RESOLUTION
    frozen = load_frozen_generator(path, resolution=RESOLUTION)
    assert torch.equal(frozen.latent_avg, latent_avg)
    w = torch.randn(2, W_DIM)
    with torch.no_grad():
        assert torch.equal(frozen.synthesize(w), decoder(w))
        assert torch.equal(model.decode(w), decoder(w))
    with pytest.raises(ValueError, match="resolution 32, but the config expects 64"):
        load_pretrained_encoder_model(path, resolution=64)


def test_unsupported_or_inconsistent_checkpoints_are_refused(tmp_path):
    restyle = tmp_path / "restyle.pt"
    _psp_file(restyle, "ResNetBackboneEncoder")
    with pytest.raises(CheckpointError, match="encoder_type='ResNetBackboneEncoder' is not"):
        read_psp_checkpoint(restyle)
    wrong_channels = tmp_path / "sketch.pt"
    _psp_file(wrong_channels, "GradualStyleEncoder", input_nc=1)
    with pytest.raises(CheckpointError, match="opts.input_nc=1"):
        read_psp_checkpoint(wrong_channels)
    path = tmp_path / "psp.pt"
    _psp_file(path, "GradualStyleEncoder")
    checkpoint = read_psp_checkpoint(path)
    assert checkpoint.architecture["blocks"] == TRUNK["blocks"]
    assert checkpoint.architecture["mode"] == "ir_se"
    with pytest.raises(CheckpointError, match="n_latent=8, but 6 was asked for"):
        checkpoint.build_encoder(n_latent=6)
    with pytest.raises(CheckpointError, match="set model.learn_in_w=false"):
        checkpoint.build_encoder(learn_in_w=True)
    content = torch.load(path, weights_only=True)
    content["latent_avg"][3] += 1  # averages that differ per style input
    torch.save(content, path)
    with pytest.raises(CheckpointError, match="latent_avg differs between style inputs"):
        load_frozen_generator(path)
    with pytest.raises(FileNotFoundError, match="model.encoder.path=<file>"):
        read_psp_checkpoint(tmp_path / "missing.pt")


def test_apply_encoder_path_runs_an_application(tmp_path):
    path = tmp_path / "e4e.pt"
    _psp_file(path, "Encoder4Editing")
    photos = sorted((SHARED_DATA / "natural").glob("*.JPEG"))[:1]
    out = tmp_path / "apply"
    overrides = [f"encoder_path={path}", f"inputs={photos[0]}", "size=64", "device=cpu"]
    apply(compose_config("apply", overrides, out))
    report = json.loads((out / "tiled_mae.json").read_text())
    assert report["images"] == 1 and report["grid"] == {"rows": 2, "cols": 2}
    with pytest.raises(ValueError, match="exactly one of ckpt_path"):
        apply(compose_config("apply", [f"inputs={photos[0]}"], out))
