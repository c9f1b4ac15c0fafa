"""`callbacks.capture`: the capturable iteration trains exactly as the eager one, honours the
step limits, and recipes or runs that cannot be captured are refused with the reason.

On the CPU the capturable step runs eagerly (there are no CUDA graphs there); recording and
replaying it is exercised by `benchmarks/gpu_benchmark.sh` on a GPU."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from invgan.callbacks.capture import CaptureIterations
from invgan.checkpoints.format import load_checkpoint
from invgan.modules.captured_iteration import CapturedIteration, CaptureError
from invgan.training.pipeline import train
from tests.test_train_evaluate import ENCODER_RECIPES

ITERATIONS = 6


def trained_state(train_config, *overrides: str) -> dict[str, torch.Tensor]:
    """The state dict of a tiny InvGAN trained for ITERATIONS iterations on synthetic data,
    with lazy R1 every other iteration (two kinds of iteration, two graphs on a GPU)."""
    cfg = train_config(
        "data=synthetic",
        "data.batch_size=4",
        f"trainer.max_steps={2 * ITERATIONS}",  # two optimizer steps per iteration
        "trainer.limit_val_batches=1",
        "test=false",
        "model.loss.r1_gamma=1",
        "model.loss.r1_interval=2",
        *overrides,
    )
    train(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    return load_checkpoint(last)["state_dict"]


def test_capturable_iteration_trains_like_the_eager_one(train_config):
    eager = trained_state(train_config)
    captured = trained_state(train_config, "callbacks.capture.enabled=true")
    assert int(captured["iteration"]) == int(eager["iteration"]) == ITERATIONS
    assert eager.keys() == captured.keys()
    for name, value in eager.items():
        torch.testing.assert_close(captured[name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_recipes_that_cannot_be_captured_are_refused(train_config, shared_data, request):
    generator = request.getfixturevalue("face_generator_checkpoint")
    cfg = train_config(
        "experiment=celeba_psp",
        f"data.root={shared_data / 'faces'}",
        f"model.generator.path={generator}",
        "data.resolution=16",
        "debug=fdr",
        "callbacks.capture.enabled=true",
        *ENCODER_RECIPES["celeba_psp"],
    )
    with pytest.raises(CaptureError, match="PSPModule iterations cannot be captured"):
        train(cfg)


def test_runs_that_cannot_be_captured_are_refused(train_config):
    cfg = train_config(
        "data=synthetic",
        "debug=fdr",
        "callbacks.capture.enabled=true",
        "trainer.accumulate_grad_batches=2",
        "+model.scheduler_g._target_=torch.optim.lr_scheduler.StepLR",
        "+model.scheduler_g._partial_=true",
        "+model.scheduler_g.step_size=1",
    )
    with pytest.raises(CaptureError) as error:
        train(cfg)
    message = str(error.value)
    assert "accumulates gradients" in message and "learning-rate schedules" in message


def test_auto_captures_on_gpus_only():
    callback = CaptureIterations(enabled="auto")
    for device, stays in (("cpu", False), ("cuda", True)):
        trainer = SimpleNamespace(
            strategy=SimpleNamespace(root_device=torch.device(device)), callbacks=[callback]
        )
        callback.setup(trainer, None, "fit")  # type: ignore[arg-type]
        assert (callback in trainer.callbacks) == stays, device


def test_capture_setting_is_checked():
    with pytest.raises(ValueError, match="allowed: true, false, auto"):
        CaptureIterations(enabled="always")


def test_warmup_must_be_positive():
    with pytest.raises(ValueError, match="callbacks.capture.warmup must be >= 1"):
        CapturedIteration(warmup=0)
