"""Faults injected for real into training: NaN loss terms and inf gradients in every recipe
(`model.nonfinite` stop or skip), a non-finite state that last.ckpt refuses, and SIGTERM /
Ctrl+C sent to a running train.py, whose last.ckpt then resumes."""

from __future__ import annotations

import functools
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import open_dict
from pytorch_lightning.plugins.precision import MixedPrecision
from pytorch_lightning.strategies import DDPStrategy
from torch import nn
from torch.utils.data import DataLoader

import invgan.modules.indomain
import invgan.modules.invgan
from invgan.callbacks.last_checkpoint import LastCheckpoint, state_is_finite
from invgan.checkpoints.format import load_checkpoint
from invgan.modules.indomain import InDomainEncoderModule
from invgan.modules.invgan import InvGANModule
from invgan.modules.invgan_loss_config import InvGANLossConfig
from invgan.modules.psp import PSPModule
from invgan.nn.dcgan import DCGANDiscriminator, DCGANGenerator
from invgan.nn.encoders.indomain import InDomainEncoder
from invgan.nn.encoders.psp import psp_encoder
from invgan.nn.frozen_generator import FrozenGenerator
from invgan.nn.mapping import MappingMLP
from invgan.nn.stylegan2.discriminator import StyleGAN2Discriminator
from invgan.nn.stylegan2.generator import StyleGAN2Generator
from invgan.training.pipeline import train
from tests.conftest import CPU_RUN, REPO_ROOT, TINY_MODELS, bare_cpu_trainer

# Fused Adam skips a bad step on a device flag (no host read); the unfused one gets the
# synchronous check. The recipes' configs use the fused one.
ADAM = functools.partial(torch.optim.Adam, lr=1e-3, fused=True)
OPTIMIZERS = {"fused": ADAM, "unfused": functools.partial(torch.optim.Adam, lr=1e-3)}
BATCH = 4
# train.py on synthetic data with the tiny DCGAN InvGAN: 4 iterations an epoch, validated after
# each (one batch), so last.ckpt is rewritten every 4 iterations.
SHORT_EPOCHS = [
    "data=synthetic",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=1",
    "test=false",
]


class MeanAbsoluteDistance(nn.Module):
    """Stand-in for LPIPS in the in-domain recipe: per-image mean absolute difference."""

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """(N,) distances."""
        return (first - second).abs().flatten(1).mean(1)


def frozen_face_generator() -> FrozenGenerator:
    """A random tiny 16-px StyleGAN2 (w_dim 16), frozen: the encoder recipes' generator."""
    return FrozenGenerator(
        StyleGAN2Generator(
            w_dim=16,
            resolution=16,
            n_mlp=2,
            channel_base=256,
            channel_max=16,
            channel_multiplier=1,
        )
    )


def invgan_module(nonfinite: str, optimizer: Any = ADAM) -> InvGANModule:
    """Tiny DCGAN InvGAN on 1-channel 16-px images."""
    return InvGANModule(
        MappingMLP(8, 8, 16),
        DCGANGenerator(8, 16, 1, base_width=4, num_scales=2),
        DCGANDiscriminator(8, 16, 1, base_width=4, num_scales=2, latent_hidden_dim=16),
        InvGANLossConfig(),
        optimizer,
        optimizer,
        nonfinite=nonfinite,
    )


def psp_module(nonfinite: str, optimizer: Any = ADAM) -> PSPModule:
    """Tiny pSp (L2 loss only) on 3-channel 16-px images."""
    encoder = functools.partial(psp_encoder, blocks=[1, 1, 1, 1], base_width=8)
    return PSPModule(
        frozen_face_generator(), encoder, optimizer, lpips_weight=0.0, nonfinite=nonfinite
    )


def indomain_module(
    nonfinite: str = "stop", optimizer: Any = ADAM, r1_gamma: float = 10.0
) -> InDomainEncoderModule:
    """Tiny in-domain encoder and discriminator on 3-channel 16-px images."""
    return InDomainEncoderModule(
        frozen_face_generator(),
        functools.partial(InDomainEncoder, base_width=4, max_width=8),
        StyleGAN2Discriminator(
            w_dim=1, resolution=16, channel_multiplier=1, channel_base=256, channel_max=16
        ),
        MeanAbsoluteDistance,
        optimizer,
        optimizer,
        r1_gamma=r1_gamma,
        nonfinite=nonfinite,
    )


# Per recipe: builder, image channels, a loss function it calls once per iteration and the term
# that function gives, and the parameter group (as `vet_iteration` names it) of a network.
RECIPES = {
    "invgan": (invgan_module, 1, (invgan.modules.invgan, "mmd_unbiased"), "mmd", "generator"),
    "psp": (psp_module, 3, (torch.nn.functional, "mse_loss"), "l2", "encoder"),
    "indomain": (
        indomain_module,
        3,
        (invgan.modules.indomain, "generator_loss"),
        "g_adv",
        "discriminator",
    ),
}


def nan_at_calls(
    function: Callable[..., torch.Tensor],
    calls: set[int],
    on_nan: Callable[[], object] = lambda: None,
) -> Callable[..., torch.Tensor]:
    """`function`, whose result is NaN at the given (0-based) calls, after calling `on_nan`;
    the NaN stays in the graph, so backward runs through it as through a real one."""
    count = iter(range(sys.maxsize))

    def wrapped(*args: Any, **kwargs: Any) -> torch.Tensor:
        value = function(*args, **kwargs)
        if next(count) not in calls:
            return value
        on_nan()
        return value * math.nan

    return wrapped


def loader(channels: int, batches: int = 3) -> DataLoader:
    """`batches` batches of random images in [0, 1]."""
    return DataLoader(torch.rand(batches * BATCH, channels, 16, 16), batch_size=BATCH)


def trained(module: nn.Module, trainer: pl.Trainer, whole: bool) -> dict[str, torch.Tensor]:
    """Copies of the parameters (trained and frozen, EMA included); if `whole`, also of the
    buffers (batch-norm statistics) but the iteration counter, and of the optimizers' moments
    and step counts."""
    if not whole:
        return {name: p.detach().clone() for name, p in module.named_parameters()}
    state = {
        name: t.detach().clone() for name, t in module.state_dict().items() if name != "iteration"
    }
    for index, optimizer in enumerate(trainer.optimizers):
        for number, slots in enumerate(optimizer.state.values()):
            for slot, value in slots.items():
                state[f"optimizer{index}.{number}.{slot}"] = value.detach().clone()
    return state


class ParameterChanges(pl.Callback):
    """Records, per training batch, whether `network`'s state (`trained`) changed during it."""

    def __init__(self, network: nn.Module, whole: bool = True) -> None:
        self.network = network
        self.whole = whole
        self.changed: list[bool] = []
        self._before: dict[str, torch.Tensor] = {}

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        """Snapshot."""
        self._before = trained(self.network, trainer, self.whole)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        """Compare."""
        after = trained(self.network, trainer, self.whole)
        self.changed.append(
            after.keys() != self._before.keys()
            or any(not torch.equal(v, after[k]) for k, v in self._before.items())
        )


class InfGradientOnce(pl.Callback):
    """During training batch `batch`, the first gradient reaching `parameter` becomes inf (the
    loss stays finite)."""

    def __init__(self, parameter: nn.Parameter, batch: int) -> None:
        self.parameter = parameter
        self.batch = batch
        self.fired = False
        self._handle: Any = None

    def _hook(self, grad: torch.Tensor) -> torch.Tensor:
        if self.fired:
            return grad
        self.fired = True
        return torch.full_like(grad, math.inf)

    def on_train_batch_start(self, trainer: pl.Trainer, module: Any, batch: Any, i: int) -> None:
        """Arm the hook on the chosen batch."""
        if i == self.batch:
            self._handle = self.parameter.register_hook(self._hook)

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, *args: Any) -> None:
        """Disarm it."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def fit(module: pl.LightningModule, channels: int, *callbacks: pl.Callback) -> None:
    """One epoch of three batches."""
    trainer = bare_cpu_trainer(max_epochs=1, limit_val_batches=0)
    trainer.callbacks.extend(callbacks)
    trainer.fit(module, loader(channels))


# ---------------------------------------------------------------- every recipe, in-process
def build_with(recipe: str, nonfinite: str, optimizer: str) -> pl.LightningModule:
    """The recipe's tiny module with the fused or the unfused Adam."""
    return RECIPES[recipe][0](nonfinite, optimizer=OPTIMIZERS[optimizer])


# With a fused optimizer the device decides and the host hears of it on the next logging step
# (the epoch's last batch here): iteration 1 is bad, so 1 and 2 are skipped (the flag is sticky
# under `stop`) and the run stops after batch 2. The unfused optimizer's check stops at once.
STOPPED_STATE_CHANGES = {"fused": [True, False, False], "unfused": [True]}


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("recipe", RECIPES)
def test_nan_loss_term_stops_before_any_parameter_changes(recipe, optimizer, monkeypatch):
    _, channels, (owner, name), term, _ = RECIPES[recipe]
    torch.manual_seed(0)
    module = build_with(recipe, "stop", optimizer)
    monkeypatch.setattr(owner, name, nan_at_calls(getattr(owner, name), {1}))
    changes = ParameterChanges(module)
    with pytest.raises(FloatingPointError, match=f"train/loss_{term} = nan at iteration 1"):
        fit(module, channels, changes)
    assert changes.changed == STOPPED_STATE_CHANGES[optimizer]
    assert state_is_finite(module.state_dict())


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("recipe", RECIPES)
def test_nan_loss_term_with_skip_drops_that_step_only(recipe, optimizer, monkeypatch, caplog):
    _, channels, (owner, name), term, _ = RECIPES[recipe]
    torch.manual_seed(0)
    module = build_with(recipe, "skip", optimizer)
    monkeypatch.setattr(owner, name, nan_at_calls(getattr(owner, name), {1}))
    changes = ParameterChanges(module)
    with caplog.at_level(logging.WARNING, logger="invgan.modules.nonfinite"):
        fit(module, channels, changes)
    # Skipped: nothing moved (EMA, buffers and optimizer state included), the iteration counted,
    # and the next iteration trained again.
    assert changes.changed == [True, False, True]
    assert module.skipped_steps == 1 and int(module.iteration) == 3
    assert f"train/loss_{term} = nan at iteration 1" in caplog.text
    assert state_is_finite(module.state_dict())


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("recipe", RECIPES)
def test_inf_gradient_with_finite_losses_is_detected(recipe, optimizer):
    _, channels, _, _, group = RECIPES[recipe]
    torch.manual_seed(0)
    module = build_with(recipe, "stop", optimizer)
    parameter = next(getattr(module, group).parameters())
    with pytest.raises(FloatingPointError) as error:
        fit(module, channels, InfGradientOnce(parameter, batch=1))
    message = str(error.value)
    assert f"gradient norm of {group} = inf at iteration 1" in message
    assert "train/loss" not in message  # every loss term was finite
    assert state_is_finite(module.state_dict())


@pytest.mark.parametrize("recipe", ["invgan", "psp"])  # manual and automatic optimisation
def test_fp16_gradient_overflow_is_left_to_the_grad_scaler(recipe):
    build, channels, _, _, group = RECIPES[recipe]
    torch.manual_seed(0)
    module = build("stop")
    scaler = torch.amp.GradScaler("cpu")
    trainer = pl.Trainer(
        accelerator="cpu",
        plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)],
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    network = getattr(module, group)
    # Parameters only: batch-norm statistics follow a step whose gradients overflowed.
    changes = ParameterChanges(network, whole=False)
    trainer.callbacks.extend([changes, InfGradientOnce(next(network.parameters()), batch=1)])
    trainer.fit(module, loader(channels))
    # The scaler skipped the overflowing step of that network and lowered its scale (it may
    # have done so at the first step too: finding the scale starts with an overflow).
    assert changes.changed[1:] == [False, True]
    assert scaler.get_scale() < 2.0**16 and module.skipped_steps == 0


def test_nonfinite_policy_is_checked():
    with pytest.raises(ValueError, match="model.nonfinite='ignore'"):
        invgan_module("ignore")


# ---------------------------------------------------------------- train.py pipeline
@pytest.fixture
def mmd_nan_at(monkeypatch: pytest.MonkeyPatch) -> Callable[[set[int], Path], dict[str, bytes]]:
    """Arms InvGAN's MMD term to be NaN at the given iterations; the dict it returns gets, under
    'last', the bytes that `last` held when the first NaN was made."""

    def arm(calls: set[int], last: Path) -> dict[str, bytes]:
        seen: dict[str, bytes] = {}
        poisoned = nan_at_calls(
            invgan.modules.invgan.mmd_unbiased,
            calls,
            lambda: seen.setdefault("last", last.read_bytes()),
        )
        monkeypatch.setattr(invgan.modules.invgan, "mmd_unbiased", poisoned)
        return seen

    return arm


def test_train_run_stopped_by_nan_keeps_the_last_good_checkpoint(train_config, mmd_nan_at):
    cfg = train_config(*SHORT_EPOCHS, "trainer.max_epochs=3")
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    seen = mmd_nan_at({6}, last)  # iteration 6: after the validation of iteration 4
    with pytest.raises(FloatingPointError, match="train/loss_mmd = nan at iteration 6"):
        train(cfg)
    assert last.read_bytes() == seen["last"]
    checkpoint = load_checkpoint(last)
    assert int(checkpoint["state_dict"]["iteration"]) == 4
    assert state_is_finite(checkpoint["state_dict"])


def test_train_run_with_skip_counts_skipped_steps_and_ends_finite(train_config, mmd_nan_at):
    cfg = train_config(*SHORT_EPOCHS, "trainer.max_epochs=2", "model.nonfinite=skip")
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    mmd_nan_at({5, 6}, last)
    metrics = train(cfg)
    assert metrics["train/skipped_steps"] == 2
    checkpoint = load_checkpoint(last)
    assert int(checkpoint["state_dict"]["iteration"]) == 8
    assert state_is_finite(checkpoint["state_dict"])


def test_last_checkpoint_refuses_a_non_finite_state(tmp_path, caplog):
    torch.manual_seed(0)
    module = invgan_module("stop")
    callback = LastCheckpoint(tmp_path)
    trainer = bare_cpu_trainer(max_epochs=1, limit_val_batches=1)
    trainer.callbacks.append(callback)
    trainer.fit(module, loader(1), loader(1, batches=1))
    assert callback.path.is_file()
    callback.save(trainer)  # the state after fitting (the last one written came before)
    written = callback.path.read_bytes()

    for poisoned in (module.discriminator.parameters(), module.generator.buffers()):
        tensor = next(t for t in poisoned if t.is_floating_point())
        kept = tensor.detach().clone()
        tensor.data.view(-1)[0] = math.inf
        with caplog.at_level(logging.ERROR, logger="invgan.callbacks.last_checkpoint"):
            callback.save(trainer)
        assert callback.path.read_bytes() == written
        assert "the previous last.ckpt was kept" in caplog.text
        tensor.data.copy_(kept)
    callback.path.unlink()
    callback.save(trainer)  # the finite state again
    assert callback.path.read_bytes() == written


# ---------------------------------------------------------------- signals
def iterations_of_grids(run_dir: Path) -> list[int]:
    """Iterations at which the image-grid callback has written samples so far."""
    return sorted(int(p.stem.rsplit("_", 1)[1]) for p in (run_dir / "images").glob("samples_*"))


def restore_default_sigint() -> None:
    """In the child before exec: SIGINT handled by default, so Python raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# A train.py run that would go on for hours. Validation never comes (every 1000 epochs), so only
# an interruption can write last.ckpt; image grids every 4 iterations show how far it got.
ENDLESS_RUN = [
    "data=synthetic",
    "trainer.max_epochs=1000",
    "trainer.check_val_every_n_epoch=1000",
    "callbacks.image_grids.every_n_iterations=4",
    "callbacks.image_grids.num_images=4",
    "test=false",
    "optimized_metric=null",
]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_interrupted_training_writes_a_resumable_last_ckpt(signum, train_config, tmp_path):
    run_dir = tmp_path / "interrupted"
    overrides = [*CPU_RUN, *TINY_MODELS["DCGANGenerator"], *ENDLESS_RUN]
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as errors:  # a file, not a pipe that nobody drains while it runs
        process = subprocess.Popen(
            [sys.executable, "train.py", *overrides, f"hydra.run.dir={run_dir}"],
            cwd=REPO_ROOT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            stdout=subprocess.DEVNULL,
            stderr=errors,
            # A suite started in the background by a non-interactive shell (as CI may be)
            # ignores SIGINT, and children inherit that: Ctrl+C would never reach train.py.
            preexec_fn=restore_default_sigint,
        )
    try:
        deadline = time.monotonic() + 60
        while len(iterations_of_grids(run_dir)) < 3 and time.monotonic() < deadline:
            assert process.poll() is None, stderr.read_text()
            time.sleep(0.05)
        assert len(iterations_of_grids(run_dir)) >= 3, "training did not start within 60 s"
        reached = iterations_of_grids(run_dir)[-1]
        last = run_dir / "checkpoints" / "last.ckpt"
        assert not last.exists()
        process.send_signal(signum)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    # A handled shutdown, no crash: 143 (128 + SIGTERM) after SIGTERM, 1 after Ctrl+C.
    assert "Traceback" not in stderr.read_text(), stderr.read_text()
    assert process.returncode == (143 if signum == signal.SIGTERM else 1)
    checkpoint = load_checkpoint(last)
    saved = int(checkpoint["state_dict"]["iteration"])
    assert saved >= reached and state_is_finite(checkpoint["state_dict"])
    assert not list(last.parent.glob(".*.tmp"))

    cfg = train_config(*ENDLESS_RUN, f"ckpt_path={last}")
    with open_dict(cfg):
        cfg.trainer.max_steps = checkpoint["global_step"] + 4  # two more iterations
    train(cfg)
    resumed = load_checkpoint(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")
    assert int(resumed["state_dict"]["iteration"]) == saved + 2


# ---------------------------------------------------------------- several processes
class NaNOnRankOne(PSPModule):
    """pSp whose check sees a NaN L2 term on rank 1 only, at iteration 1: a fault local to one
    process (its gradients, which DDP averages, stay finite)."""

    def vet_iteration(self, losses: dict[str, torch.Tensor], *args: Any) -> torch.Tensor:
        """Poison the L2 term on rank 1, then check."""
        if self.global_rank == 1 and self.host_iteration == 1:
            losses = {**losses, "l2": losses["l2"] * math.nan}
        return super().vet_iteration(losses, *args)


@pytest.mark.slow
def test_ranks_skip_together_when_one_rank_sees_a_nan():
    torch.manual_seed(0)
    encoder = functools.partial(psp_encoder, blocks=[1, 1, 1, 1], base_width=8)
    module = NaNOnRankOne(
        frozen_face_generator(), encoder, ADAM, lpips_weight=0.0, nonfinite="skip"
    )
    # A short collective timeout turns a disagreement (a deadlock) into an error.
    strategy = DDPStrategy(start_method="spawn", timeout=timedelta(seconds=60))
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy=strategy,
        max_epochs=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, loader(3, batches=6))
    # Rank 0 (whose metrics come back) saw only finite values, yet skipped with rank 1.
    assert float(trainer.callback_metrics["train/skipped_steps"]) == 1
    assert state_is_finite(module.state_dict())
