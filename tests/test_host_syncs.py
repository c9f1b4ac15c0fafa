"""No training iteration reads a device value on the host, except on logging steps: counted on
the CPU, where the same code makes the same calls as on a GPU (`invgan.utils.host_syncs`)."""

from __future__ import annotations

from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from invgan.training import train
from invgan.utils.host_syncs import HostSyncCounter
from tests.test_train_evaluate import ENCODER_RECIPES, SHARED_STAND_INS

# Batch 1 and 2 of 4 are counted: past the first iteration (which may read the iteration
# counter once) and before the epoch's last batch, which logs.
COUNTED_BATCHES = (1, 2)


class CountHostSyncs(pl.Callback):
    """Counts the host reads of the training batches `COUNTED_BATCHES`, from the start of each
    batch (before Lightning's transfer of it) to the end of its hooks."""

    counts: dict[int, dict[str, int]] = {}

    def on_train_batch_start(self, trainer: pl.Trainer, module: Any, batch: Any, i: int) -> None:
        """Start counting."""
        self.counter = HostSyncCounter() if i in COUNTED_BATCHES else None
        if self.counter is not None:
            self.counter.__enter__()

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, *args: Any) -> None:
        """Stop counting (other callbacks' and the module's hooks for this batch come before:
        this callback is the last in the list)."""
        if self.counter is not None:
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
    stand_in = SHARED_STAND_INS.get(experiment)
    overrides = [f"data.root={shared_data / stand_in}"] if stand_in else []
    if experiment in ENCODER_RECIPES:
        generator = request.getfixturevalue("face_generator_checkpoint")
        overrides += [f"model.generator.path={generator}", "data.resolution=16"]
    overrides += RECIPES[experiment]
    CountHostSyncs.counts = {}
    cfg = train_config(
        f"experiment={experiment}",
        "data.batch_size=4",
        "trainer.limit_train_batches=4",
        "trainer.limit_val_batches=1",
        "trainer.max_epochs=1",
        "trainer.log_every_n_steps=1000",
        "test=false",
        "+callbacks.zz_host_syncs._target_=tests.test_host_syncs.CountHostSyncs",
        *overrides,
    )
    train(cfg)
    assert sorted(CountHostSyncs.counts) == list(COUNTED_BATCHES)
    assert all(not ops for ops in CountHostSyncs.counts.values()), CountHostSyncs.counts


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
