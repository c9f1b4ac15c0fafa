"""No training iteration reads a device value on the host, except on logging steps: counted on
the CPU, where the same code makes the same calls as on a GPU (`invgan.utils.host_syncs`)."""

from __future__ import annotations

from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from invgan.training.pipeline import train
from invgan.utils.host_syncs import HostSyncCounter
from tests.test_train_evaluate import stand_in_overrides


class CountHostSyncs(pl.Callback):
    """Counts the host reads of every training batch, from its start to the end of its hooks,
    and notes which batches log. (Lightning's logger connector then reads the logged values:
    host copies, see `test_logged_values_reach_lightning_as_one_host_copy`.)"""

    counts: dict[int, dict[str, int]] = {}
    logging: dict[int, bool] = {}

    def on_train_batch_start(self, trainer: pl.Trainer, module: Any, batch: Any, i: int) -> None:
        """Start counting."""
        CountHostSyncs.logging[i] = module.logs_this_step(i)
        self.counter = HostSyncCounter()
        self.counter.__enter__()

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, *args: Any) -> None:
        """Stop counting (the module's and the other callbacks' hooks for this batch come
        before: this callback is the last in the list)."""
        self.counter.__exit__(None, None, None)
        CountHostSyncs.counts[trainer.fit_loop.batch_idx] = dict(self.counter.ops)


# Each recipe, with R1 on every iteration where it has R1, so that its double backward is
# among the iterations counted.
RECIPES = {
    "mnist_dcgan_invgan": [],
    "celeba_stylegan_invgan": ["model.loss.r1_interval=1"],
    "imagenet_biggan_patches": ["model.loss.r1_gamma=1", "model.loss.r1_interval=1"],
    "celeba_psp": [],
    "celeba_indomain": ["model.r1_interval=1"],
}


@pytest.mark.parametrize("experiment", RECIPES)
def test_training_iterations_make_no_host_reads(experiment, train_config, shared_data, request):
    overrides = [*stand_in_overrides(experiment, shared_data, request), *RECIPES[experiment]]
    CountHostSyncs.counts, CountHostSyncs.logging = {}, {}
    cfg = train_config(
        f"experiment={experiment}",
        "data.batch_size=4",
        "trainer.limit_train_batches=6",
        "trainer.limit_val_batches=1",
        "trainer.max_epochs=1",
        "trainer.log_every_n_steps=3",
        "test=false",
        "+callbacks.zz_host_syncs._target_=tests.test_host_syncs.CountHostSyncs",
        *overrides,
    )
    train(cfg)
    # Batches that do not log, after one that did, past the first (which reads the iteration
    # counter once).
    logging = CountHostSyncs.logging
    counted = [
        i for i in logging if i > 0 and not logging[i] and any(logging[j] for j in range(i))
    ]
    assert counted, logging
    reads = {i: CountHostSyncs.counts[i] for i in counted}
    assert all(not ops for ops in reads.values()), reads


def test_counter_sees_every_kind_of_host_read():
    values = torch.randn(4, requires_grad=True)
    with HostSyncCounter() as counter:
        float(values.sum())
        bool(values.sum() > 0)
        values.detach().tolist()
        values.detach().numpy()
        _ = values[values > 0]
        values.nonzero()
        (values * 2).sum().backward()  # none
    assert counter.ops == {
        "aten._local_scalar_dense.default": 2,
        "Tensor.tolist": 1,
        "Tensor.numpy": 1,
        "aten.index.Tensor": 1,
        "aten.nonzero.default": 1,
    }


def test_logged_values_reach_lightning_as_one_host_copy(monkeypatch):
    """Lightning reads progress-bar values after every batch: the recipes log host copies,
    made by one transfer per logging step, so those reads never wait for a GPU."""
    from invgan.modules.nonfinite import NonFiniteGuardModule

    copies: list[torch.Tensor] = []
    original = torch.Tensor.cpu

    def recording_cpu(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        copy = original(tensor, *args, **kwargs).clone()  # a distinct tensor, as from a GPU
        copies.append(copy)
        return copy

    logged: dict[str, torch.Tensor] = {}
    module = NonFiniteGuardModule()
    monkeypatch.setattr(torch.Tensor, "cpu", recording_cpu)
    monkeypatch.setattr(module, "log_dict", lambda values, **options: logged.update(values))
    values = {"train/loss_a": torch.tensor(1.5), "train/mae": torch.tensor([[0.25]])}
    module.log_training_values(values, batch_size=4, progress_bar={"mae": "train/mae"})
    assert len(copies) == 1
    assert all(value._base is copies[0] or value is copies[0] for value in logged.values())
    assert {k: float(v) for k, v in logged.items()} == {
        "train/loss_a": 1.5,
        "train/mae": 0.25,
        "mae": 0.25,
    }
