"""ONNX and TorchScript exports of the inference graphs, run outside PyTorch's eager mode and
compared with the model: onnxruntime on the CPU (max abs error <= 1e-4 on [-1, 1] images)
and `torch.jit.load`, at a batch size other than the one exported."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch

from invgan.checkpoints.format import load_checkpoint
from invgan.checkpoints.generator_import import load_frozen_generator
from invgan.checkpoints.run_config import restore_run_config
from invgan.cli.export import export
from invgan.deployment.inference_graphs import inference_graphs
from invgan.deployment.onnx_format import export_onnx
from invgan.deployment.rosinality_format import write_rosinality
from invgan.deployment.torchscript_format import export_torchscript
from invgan.evaluation.loading import build_model
from invgan.modules.psp import PSPModule
from invgan.nn.encoders.psp import psp_encoder
from invgan.nn.frozen_generator import FrozenGenerator
from invgan.nn.stylegan2.generator import StyleGAN2Generator
from invgan.training.pipeline import train
from tests.conftest import CPU_RUN, TINY_MODELS, compose_config
from tests.test_safety import TINY_RUN

ort = pytest.importorskip("onnxruntime")
TOLERANCE = 1e-4
BATCH = 5  # not the exported example batch: the batch dimension must be dynamic


def _invgan(experiment: str, generator: str, tmp_path: Path, *overrides: str):
    cfg = compose_config(
        "train",
        [*CPU_RUN, *TINY_MODELS[generator], f"experiment={experiment}", *overrides],
        tmp_path,
    )
    torch.manual_seed(0)
    return hydra.utils.instantiate(cfg.model).eval()


def _psp() -> PSPModule:
    torch.manual_seed(0)
    stylegan = StyleGAN2Generator(
        resolution=16, w_dim=16, n_mlp=2, channel_base=256, channel_max=16, channel_multiplier=1
    )
    frozen = FrozenGenerator(stylegan)
    frozen.estimate_latent_avg()
    encoder = partial(psp_encoder, blocks=[1, 1, 1, 1], base_width=8)
    return PSPModule(frozen, encoder, partial(torch.optim.Adam), lpips_weight=0.0).eval()


MODELS = {
    "dcgan": lambda tmp: _invgan("mnist_dcgan_invgan", "DCGANGenerator", tmp),
    "stylegan2": lambda tmp: _invgan(
        "celeba_stylegan_invgan", "StyleGAN2Generator", tmp, "data.resolution=16"
    ),
    "psp": lambda tmp: _psp(),
}


def _input(graph, generator: torch.Generator) -> torch.Tensor:
    shape = (BATCH, *graph.example.shape[1:])
    if graph.input_name == "images":
        return torch.rand(shape, generator=generator) * 2 - 1
    return torch.randn(shape, generator=generator)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_files_run_in_onnxruntime_like_the_model(name, tmp_path):
    model = MODELS[name](tmp_path)
    seed = torch.Generator().manual_seed(1)
    for graph in inference_graphs(model):
        path = export_onnx(graph, tmp_path / f"{graph.name}.onnx")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == [graph.input_name]
        inputs = _input(graph, seed)
        (output,) = session.run(None, {graph.input_name: inputs.numpy()})
        with torch.no_grad():
            expected = graph.module(inputs).numpy()
        assert output.shape == expected.shape and output.shape[0] == BATCH
        error = float(np.abs(output - expected).max())
        assert error <= TOLERANCE, f"{name} {graph.name}: max abs error {error}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torchscript_files_reload_and_match_the_model(name, tmp_path):
    model = MODELS[name](tmp_path)
    seed = torch.Generator().manual_seed(2)
    for graph in inference_graphs(model):
        path = export_torchscript(graph, tmp_path / f"{graph.name}.pt")
        loaded = torch.jit.load(str(path))
        inputs = _input(graph, seed)
        with torch.no_grad():
            torch.testing.assert_close(loaded(inputs), graph.module(inputs), atol=1e-5, rtol=0)


def test_reconstruction_graph_is_the_generator_of_the_encoder(tmp_path):
    model = MODELS["stylegan2"](tmp_path)
    graphs = {graph.name: graph for graph in inference_graphs(model)}
    images = torch.rand(3, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        chained = graphs["generator"].module(graphs["encoder"].module(images))
        torch.testing.assert_close(graphs["reconstruction"].module(images), chained)
        torch.testing.assert_close(chained, model.reconstruct(images))


def test_export_command_writes_a_folder_that_runs_like_the_checkpoint(tmp_path):

    run = tmp_path / "run"
    train(compose_config("train", TINY_RUN, run))
    last = run / "checkpoints" / "last.ckpt"
    out = tmp_path / "exported"
    written = export(
        compose_config(
            "export", [f"ckpt_path={last}", "format=onnx", f"out={out}"], tmp_path / "e"
        )
    )
    assert written == out
    manifest = json.loads((out / "model.json").read_text())
    assert sorted(manifest["files"]) == ["encoder", "generator", "mapping", "reconstruction"]
    assert all((out / name).is_file() for name in manifest["files"].values())

    cfg = compose_config("export", [f"ckpt_path={last}"], tmp_path / "e")
    checkpoint = load_checkpoint(last)
    model = build_model(restore_run_config(checkpoint, cfg), checkpoint, cfg)
    side, channels = manifest["resolution"], manifest["channels"]
    images = torch.rand(BATCH, channels, side, side, generator=torch.Generator().manual_seed(3))
    images = images * 2 - 1
    session = ort.InferenceSession(str(out / manifest["files"]["reconstruction"]))
    (reconstructions,) = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        expected = model.reconstruct(images).numpy()
    assert float(np.abs(reconstructions - expected).max()) <= TOLERANCE

    before = {path.name: path.stat().st_mtime_ns for path in out.iterdir()}
    again = [f"ckpt_path={last}", "format=torchscript", f"out={out}"]
    with pytest.raises(FileExistsError, match="overwrite=true"):
        export(compose_config("export", again, tmp_path / "e"))
    assert {path.name: path.stat().st_mtime_ns for path in out.iterdir()} == before
    export(compose_config("export", [*again, "overwrite=true"], tmp_path / "e"))
    assert json.loads((out / "model.json").read_text())["format"] == "torchscript"
    assert not list(tmp_path.glob(".exported.*")), "no staging folder is left behind"


def test_round_trip_run_safetensors_rosinality_onnx(face_generator_checkpoint, tmp_path):
    """A StyleGAN2 run -> safetensors -> rosinality .pt -> our importer -> rosinality .pt again
    keeps every tensor; the ONNX generator exported from the safetensors draws the same
    images as the run's generator."""

    def exported(*overrides: str) -> Path:
        return export(compose_config("export", list(overrides), tmp_path / "logs"))

    safetensors = exported(
        f"ckpt_path={face_generator_checkpoint}", f"out={tmp_path / 'm.safetensors'}"
    )
    first = exported(f"ckpt_path={safetensors}", "format=rosinality", f"out={tmp_path / 'g.pt'}")
    content = torch.load(first, weights_only=True)
    assert sorted(content) == ["g_ema", "latent_avg"]

    imported = load_frozen_generator(first)
    torch.testing.assert_close(imported.latent_avg, content["latent_avg"], atol=0, rtol=0)
    again = tmp_path / "again.pt"

    class _Holder:  # the importer's generator offered as a model
        def frozen_generator(self):
            return imported

    write_rosinality(_Holder(), again)
    second = torch.load(again, weights_only=True)
    assert second["g_ema"].keys() == content["g_ema"].keys()
    for name, tensor in content["g_ema"].items():
        assert torch.equal(second["g_ema"][name], tensor), name

    cfg = compose_config("export", [f"ckpt_path={face_generator_checkpoint}"], tmp_path / "e")
    checkpoint = load_checkpoint(face_generator_checkpoint)
    model = build_model(restore_run_config(checkpoint, cfg), checkpoint, cfg)
    onnx_folder = exported(f"ckpt_path={safetensors}", "format=onnx", f"out={tmp_path / 'onnx'}")
    session = ort.InferenceSession(str(onnx_folder / "generator.onnx"))
    codes = model.encode(torch.rand(BATCH, 3, 16, 16) * 2 - 1).detach()
    (images,) = session.run(None, {"codes": codes.numpy()})
    with torch.no_grad():
        expected = model.decode(codes)
        torch.testing.assert_close(imported.synthesize(codes), expected, atol=1e-5, rtol=0)
    assert float(np.abs(images - expected.numpy()).max()) <= TOLERANCE


def test_rosinality_export_refuses_other_generators(tmp_path):
    with pytest.raises(ValueError, match="StyleGAN2 generators; this model's is DCGANGenerator"):
        write_rosinality(MODELS["dcgan"](tmp_path), tmp_path / "g.pt")
