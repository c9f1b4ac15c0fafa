"""ReStyle: the first step is a pSp forward on the image and the average image, training
back-propagates every step's loss without reaching earlier steps and improves reconstructions
on real faces, `inversion=restyle` runs N refinement steps, and evaluate.py takes a ReStyle run
with any step count."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import hydra
import pytest
import torch
import torch.nn.functional as F
from hydra.errors import InstantiationException

from invgan.checkpoints.format import load_checkpoint
from invgan.cli.apply import apply
from invgan.cli.user_errors import user_error
from invgan.evaluation.pipeline import evaluate
from invgan.inversion.restyle import ReStyleInversion
from invgan.modules.psp import PSPModule
from invgan.modules.restyle import ReStyleModule
from invgan.nn.encoders.e4e import E4EEncoder
from invgan.nn.encoders.psp import GradualStyleEncoder
from invgan.training.pipeline import train
from invgan.utils.config_checks import ConfigValueError
from invgan.utils.images import to_signed_range
from invgan.utils.instantiate import instantiate_datamodule
from tests.conftest import SHARED_DATA, bare_cpu_trainer, compose_config

FACES = SHARED_DATA / "faces"
# experiment=celeba_restyle shrunk to the 16-px test generator; L2 only keeps steps cheap.
TINY_RESTYLE = [
    "experiment=celeba_restyle",
    f"data.root={FACES}",
    "data.resolution=16",
    "data.batch_size=8",
    "data.eval_batch_size=16",
    "model.encoder.blocks=[1,1,1,1]",
    "model.encoder.base_width=8",
    "model.generator.latent_avg_samples=2000",
    "model.lpips_weight=0",
    "model.iterations=3",
]
# For tests that never decode: skip estimating the average latent (2,000 mapping passes).
NO_AVERAGE = ["model.generator.latent_avg_samples=1"]


def _model(train_config, generator: Path, *overrides: str) -> ReStyleModule:
    cfg = train_config(*TINY_RESTYLE, f"model.generator.path={generator}", *overrides, tiny=False)
    return hydra.utils.instantiate(cfg.model)


def _faces(count: int, seed: int = 0) -> torch.Tensor:
    """`count` validation faces in [-1, 1] at 16 px."""
    datamodule = instantiate_datamodule(
        compose_config("train", [*TINY_RESTYLE, "model.generator.path=x"], Path(".")).data
    )
    datamodule.setup()
    order = torch.randperm(
        len(datamodule.val_dataset), generator=torch.Generator().manual_seed(seed)
    )
    return to_signed_range(torch.stack([datamodule.val_dataset[int(i)] for i in order[:count]]))


def _perturb(model: ReStyleModule) -> None:
    """Give the encoder's equalized output layers non-trivial weights (they start near 0)."""
    with torch.no_grad():
        for parameter in model.encoder.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))


# ---------------------------------------------------------------- first step = pSp forward
@pytest.mark.parametrize("architecture", ["psp", "e4e"])
def test_first_step_is_a_psp_forward_on_the_image_and_the_average_image(
    face_generator_checkpoint, train_config, architecture
):
    torch.manual_seed(0)
    model = _model(
        train_config, face_generator_checkpoint, f"model.encoder.architecture={architecture}"
    )
    expected_class = {"psp": GradualStyleEncoder, "e4e": E4EEncoder}[architecture]
    assert type(model.encoder) is expected_class
    assert model.encoder.input_layer[0].in_channels == 6
    _perturb(model)
    images = torch.rand(4, 3, 16, 16) * 2 - 1

    # pSp's forward: offsets from the average latent, E sees x and G(w_avg) stacked.
    psp = PSPModule(
        model.generator, lambda **_: model.encoder, partial(torch.optim.Adam), lpips_weight=0
    )
    w_avg = model.generator.latent_avg.expand(1, model.generator.n_latent, -1)
    average_image = psp.decode(w_avg)
    with torch.no_grad():
        expected = psp.encode(torch.cat([images, average_image.expand(4, -1, -1, -1)], dim=1))
        first = ReStyleInversion(model, iterations=1).encode(images)
    assert torch.equal(first, expected)
    assert not torch.equal(first, w_avg.expand_as(first))  # the encoder moved the codes


# ---------------------------------------------------------------- N-step inversion
def test_inversion_runs_n_manual_refinement_steps(face_generator_checkpoint, train_config):
    torch.manual_seed(1)
    model = _model(train_config, face_generator_checkpoint)
    _perturb(model)
    model.encoder.train()  # the method must switch to eval mode (batch norm) and back
    images = torch.rand(3, 3, 16, 16) * 2 - 1
    method = ReStyleInversion(model, iterations=4)
    with torch.no_grad():
        steps = method.encode_steps(images)
        reconstructions = method.reconstruct_steps(images)

        model.encoder.eval()
        codes = model.generator.latent_avg.expand(3, model.generator.n_latent, -1)
        current = model.generator.synthesize(codes[:1]).expand(3, -1, -1, -1)
        manual = []
        for _ in range(4):
            codes = codes + model.encoder(torch.cat([images, current], dim=1))
            current = model.generator.synthesize(codes)
            manual.append(codes)
        model.encoder.train()
        assert method.encode(images).shape == (3, model.generator.n_latent, 16)

    assert model.encoder.training
    assert len(steps) == 4
    for step, expected in zip(steps, manual, strict=True):
        assert torch.allclose(step, expected, atol=1e-6)
    assert torch.allclose(reconstructions[-1], current, atol=1e-6)
    # Each step changes the codes: four distinct points, not one repeated.
    assert all(not torch.allclose(a, b) for a, b in zip(steps, steps[1:], strict=False))


def test_inversion_refuses_bad_step_counts_and_non_restyle_models(
    face_generator_checkpoint, train_config
):
    model = _model(train_config, face_generator_checkpoint)
    with pytest.raises(ConfigValueError, match=r"inversion.iterations=0: must be an integer"):
        ReStyleInversion(model, iterations=0)
    psp = PSPModule(
        model.generator, lambda **_: model.encoder, partial(torch.optim.Adam), lpips_weight=0
    )
    with pytest.raises(ConfigValueError, match="inversion=restyle needs a ReStyle run"):
        ReStyleInversion(psp, iterations=2)
    refused = {
        "model.iterations=0": "model.iterations=0: must be an integer >= 1",
        "model.learn_in_w=true": "ReStyle refines W\\+ codes; set model.learn_in_w=false",
        "model.start_from_latent_avg=false": "set model.start_from_latent_avg=true",
        "model.encoder.path=/some/psp.pt": "leave model.encoder.path unset",
        "model.encoder.architecture=e5e": "model.encoder.architecture='e5e': must be one of",
    }
    for override, message in refused.items():
        with pytest.raises(InstantiationException) as raised:
            _model(train_config, face_generator_checkpoint, override, *NO_AVERAGE)
        # The command line shows it as a user error (one paragraph, exit status 2).
        assert isinstance(user_error(raised.value), ConfigValueError), override
        assert re.search(message, str(user_error(raised.value))), override


# ---------------------------------------------------------------- training
def test_each_step_back_propagates_its_own_loss_without_reaching_earlier_steps(
    face_generator_checkpoint, train_config
):
    torch.manual_seed(2)
    model = _model(train_config, face_generator_checkpoint)
    _perturb(model)
    real = _faces(4)

    model.zero_grad()
    run = model.backward_refinement(real, 2, torch.Tensor.backward)
    grads = [p.grad.clone() for p in model.encoder.parameters()]

    # By hand: two steps, the second from the first's detached codes and image; L2 of each.
    def reference(detach: bool) -> list[torch.Tensor]:
        model.zero_grad()
        w = model.generator.latent_avg.expand(4, model.generator.n_latent, -1)
        y = model.generator.synthesize(w[:1]).expand(4, -1, -1, -1)
        w1 = w + model.encoder(torch.cat([real, y], dim=1))
        y1 = model.generator.synthesize(w1)
        w1_in, y1_in = (w1.detach(), y1.detach()) if detach else (w1, y1)
        w2 = w1_in + model.encoder(torch.cat([real, y1_in], dim=1))
        y2 = model.generator.synthesize(w2)
        (F.mse_loss(y1, real) + F.mse_loss(y2, real)).backward()
        return [p.grad.clone() for p in model.encoder.parameters()]

    detached, through = reference(detach=True), reference(detach=False)
    assert all(
        torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(grads, detached, strict=True)
    )
    assert not all(
        torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(grads, through, strict=True)
    )
    assert run.loss == pytest.approx(float(run.sums["l2"]), rel=1e-6)
    assert float(F.mse_loss(run.last_images, real)) == pytest.approx(float(run.last["l2"]))


def _mae_per_step(model: ReStyleModule, images: torch.Tensor, steps: int) -> list[float]:
    with torch.no_grad():
        codes = model.encode_iterations(images, steps)
        return [float((model.decode(c) - images).abs().mean()) for c in codes]


def test_training_improves_reconstructions_and_later_steps_refine_them(
    face_generator_checkpoint, train_config
):
    torch.manual_seed(3)
    model = _model(train_config, face_generator_checkpoint)
    model.optimizer = partial(torch.optim.Adam, lr=1e-3)  # a faster start than ReStyle's 1e-4
    cfg_data = compose_config("train", [*TINY_RESTYLE, "model.generator.path=x"], Path(".")).data
    datamodule = instantiate_datamodule(cfg_data)
    val = _faces(32)
    generator_before = {k: v.clone() for k, v in model.generator.state_dict().items()}
    before = _mae_per_step(model, val, 3)
    # Untrained, every step adds about the same offset again: later steps are worse.
    assert before[0] < before[1] < before[2]

    trainer = bare_cpu_trainer(max_steps=40, limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=datamodule)

    after = _mae_per_step(model, val, 3)
    assert int(model.iteration) == 40
    assert after[2] < 0.9 * before[2]
    assert after[1] < after[0]  # trained, the second step corrects the first
    after_generator = model.generator.state_dict()
    assert all(torch.equal(after_generator[k], v) for k, v in generator_before.items())
    assert all(p.grad is None for p in model.generator.parameters())
    logged = trainer.callback_metrics
    for name in ("train/loss", "train/loss_l2", "train/mae", "train/mae_first_step"):
        assert torch.isfinite(logged[name]), name


def test_random_iterations_draw_each_batch_s_step_count_from_one_to_n(
    face_generator_checkpoint, train_config
):
    fixed = _model(train_config, face_generator_checkpoint, *NO_AVERAGE)
    assert {fixed.training_iterations() for _ in range(20)} == {3}
    drawn = _model(
        train_config, face_generator_checkpoint, "model.random_iterations=true", *NO_AVERAGE
    )
    torch.manual_seed(0)
    counts = [drawn.training_iterations() for _ in range(200)]
    assert set(counts) == {1, 2, 3}
    assert all(40 < counts.count(n) < 100 for n in (1, 2, 3))  # uniform: about 67 each


# ---------------------------------------------------------------- train.py -> evaluate.py
def test_evaluate_py_takes_a_restyle_run_at_any_step_count(
    face_generator_checkpoint, train_config, tmp_path
):
    cfg = train_config(
        *TINY_RESTYLE,
        f"model.generator.path={face_generator_checkpoint}",
        "trainer.max_steps=4",
        "trainer.limit_val_batches=1",
        "test=false",
        "optimized_metric=null",
        "callbacks.image_grids.every_n_iterations=1000",
        tiny=False,
    )
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert "encoder.input_layer.0.weight" in load_checkpoint(ckpt)["state_dict"]

    def run(iterations: int) -> dict:
        overrides = [
            f"ckpt_path={ckpt}",
            "inversion=restyle",
            f"inversion.iterations={iterations}",
            "device=cpu",
            "metrics.reconstruction.max_images=16",
            "metrics.lpips.enabled=false",
            "metrics.runtime.enabled=false",
            # FIDs (Table 3's RandFID / RandRecFID) take Inception tens of seconds on a CPU:
            # benchmarks/restyle_table3.sh computes them.
            "metrics.fid.enabled=false",
        ]
        return evaluate(compose_config("evaluate", overrides, tmp_path / f"eval_{iterations}"))

    one, three = run(1), run(3)
    assert one["inversion"]["iterations"] == 1 and three["inversion"]["iterations"] == 3
    for report in (one, three):
        assert report["metrics"]["test/mae"]["count"] == 16
        assert (tmp_path / f"eval_{report['inversion']['iterations']}" / "table.md").is_file()
    assert one["metrics"]["test/mae"]["value"] != three["metrics"]["test/mae"]["value"]

    # python -m invgan.apply with the same method: interpolation between two real faces.
    faces = tmp_path / "faces"
    faces.mkdir()
    for face in sorted(FACES.glob("*.jpg"))[:2]:
        (faces / face.name).symlink_to(face)
    ends = []
    for iterations in (1, 2):
        out = tmp_path / f"apply_{iterations}"
        command = [f"ckpt_path={ckpt}", f"inputs={faces}", "application=interpolation"]
        command += ["inversion=restyle", f"inversion.iterations={iterations}", "device=cpu"]
        apply(compose_config("apply", command, out))
        codes = torch.load(out / "interpolation_codes.pt", weights_only=True)["codes"]
        assert codes.shape == (1, 8, 6, 16)  # one pair, 8 steps, W+ codes of the generator
        ends.append(codes[0, 0])
    assert not torch.equal(*ends)
