"""What the Trainer does on every batch besides training: the progress bar redraws on a clock,
callbacks with nothing to do leave the trainer, and values shown on the progress bar are logged
as host tensors."""

from __future__ import annotations

import hydra
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import TQDMProgressBar
from torch.utils.data import DataLoader

import invgan.callbacks.progress_bar as progress_bar_module
from invgan.callbacks.channels_last import ChannelsLast
from invgan.callbacks.compile_networks import CompileNetworks
from invgan.callbacks.progress_bar import NoProgressBar, ProgressBar
from invgan.callbacks.training_time import TrainingTimeCallback
from invgan.utils.instantiate import instantiate_callbacks
from tests.conftest import bare_cpu_trainer


class TinyModule(pl.LightningModule):
    """One parameter, one optimizer step per batch of 10 random numbers."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        """A loss that depends on the parameter."""
        return (batch * self.weight).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Plain SGD."""
        return torch.optim.SGD(self.parameters(), lr=0.1)


def batches(count: int) -> DataLoader:
    """`count` batches of 10 numbers."""
    return DataLoader(torch.rand(10 * count), batch_size=10)


class HookRecorder(pl.Callback):
    """Records which hooks ran, and how often each training-batch hook did."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def setup(self, trainer, pl_module, stage) -> None:  # noqa: D102
        self._count("setup")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: D102
        self._count("on_train_batch_end")


def test_progress_bar_redraws_on_its_clock_and_at_the_last_batch(monkeypatch):
    clock = iter(0.1 * step for step in range(1, 1000))  # 0.1 s per batch
    monkeypatch.setattr(progress_bar_module, "monotonic", lambda: next(clock))
    redrawn = []
    monkeypatch.setattr(
        TQDMProgressBar,
        "on_train_batch_end",
        lambda self, trainer, module, outputs, batch, batch_idx: redrawn.append(batch_idx),
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[ProgressBar(interval=0.25)],
    )
    trainer.fit(TinyModule(), batches(10))
    # Times 0.1, 0.2, ... 1.0: redraws at 0.1, then once 0.25 s have passed, and the last batch.
    assert redrawn == [0, 3, 6, 9]


def test_progress_bar_follows_the_trainer_flag(train_config):
    for enabled in (True, False):
        cfg = train_config("data=synthetic", f"trainer.enable_progress_bar={enabled}")
        callbacks = instantiate_callbacks(cfg.callbacks)
        # Lightning refuses a progress bar callback when the flag is off: building must work.
        trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=False)
        bar = trainer.progress_bar_callback
        assert isinstance(bar, ProgressBar) if enabled else bar is None
        assert any(isinstance(c, NoProgressBar) for c in trainer.callbacks) is not enabled


def test_callbacks_with_nothing_to_do_leave_the_trainer():
    idle = [ChannelsLast(enabled=False), CompileNetworks([]), NoProgressBar()]
    first, last = HookRecorder(), HookRecorder()
    trainer = bare_cpu_trainer(max_epochs=1, callbacks=[first, *idle, last])
    trainer.fit(TinyModule(), batches(3))
    assert not any(callback in trainer.callbacks for callback in idle)
    # Leaving during setup skips no other callback's setup, before or after them.
    for recorder in (first, last):
        assert recorder.calls == {"setup": 1, "on_train_batch_end": 3}
    # Enabled, they stay.
    enabled = ChannelsLast(enabled=True)
    trainer = bare_cpu_trainer(max_epochs=1, callbacks=[enabled])
    trainer.fit(TinyModule(), batches(1))
    assert enabled in trainer.callbacks


def test_training_time_logs_host_tensors():
    # Lightning reads progress-bar values on the host after every batch: from a GPU each read
    # would wait for the device.
    trainer = bare_cpu_trainer(max_epochs=1, callbacks=[TrainingTimeCallback()])
    trainer.fit(TinyModule(), batches(4))
    for name in ("time/train_seconds", "time/images_per_second"):
        value = trainer.callback_metrics[name]
        assert value.device.type == "cpu" and value.dtype == torch.float32
        assert value > 0
    assert trainer.progress_bar_metrics["time/images_per_second"] > 0
