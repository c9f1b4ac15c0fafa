"""trainer=ddp_sim (2 CPU processes, gloo) trains InvGAN (manual optimisation, gradients
averaged by hand): ranks end with the same weights, draw different latents, and the checkpoint
reloads."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from invgan.checkpoints.format import load_checkpoint
from invgan.checkpoints.run_config import restore_run_config
from invgan.evaluation.loading import build_model
from tests.conftest import CPU_RUN, SHARED_DATA, TINY_MODELS, run_entry_point


def _per_rank_statistics(name: str) -> bool:
    """Batch-norm running statistics stay per rank (no SyncBatchNorm on CPU)."""
    return "running_" in name or "num_batches_tracked" in name


def test_two_process_training_keeps_ranks_identical_and_reloads(tmp_path):
    run = tmp_path / "run"
    result = run_entry_point(
        "train.py",
        "trainer=ddp_sim",
        "data=synthetic",
        *CPU_RUN,
        *TINY_MODELS["DCGANGenerator"],
        "trainer.max_epochs=2",
        "test=false",
        "+callbacks.rank_dump._target_=tests.rank_probe.RankStateDump",
        f"hydra.run.dir={run}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(run / f"rank_{r}.pt", weights_only=True) for r in range(2)]
    states = [rank["state_dict"] for rank in ranks]
    assert int(states[0]["iteration"]) > 0
    compared = [name for name in states[0] if not _per_rank_statistics(name)]
    for name in compared:  # weights, EMA copies, counters: averaged gradients, same steps
        assert torch.equal(states[0][name], states[1][name]), name
    assert not torch.equal(ranks[0]["draw"], ranks[1]["draw"]), "ranks share one random stream"
    # The run's checkpoint rebuilds the model with rank zero's weights.
    checkpoint = load_checkpoint(run / "checkpoints" / "last.ckpt")
    here = OmegaConf.create({"paths": {"output_dir": str(tmp_path)}, "seed": 0})
    model = build_model(restore_run_config(checkpoint, here), checkpoint, here)
    reloaded = model.state_dict()
    for name in compared:
        assert torch.equal(reloaded[name], states[0][name]), name


def test_two_process_run_resumes_exactly(tmp_path):
    """Each rank gets its own random states back: 1 epoch + resume + 1 epoch equals 2 epochs."""

    def run(name: str, epochs: int, *extra: str) -> dict[str, torch.Tensor]:
        folder = tmp_path / name
        result = run_entry_point(
            "train.py",
            "trainer=ddp_sim",
            "data=synthetic",
            *CPU_RUN,
            *TINY_MODELS["DCGANGenerator"],
            f"trainer.max_epochs={epochs}",
            "test=false",
            "callbacks.image_grids.every_n_iterations=1000",
            f"hydra.run.dir={folder}",
            *extra,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return load_checkpoint(folder / "checkpoints" / "last.ckpt")

    straight = run("straight", 2)
    half = run("half", 1)
    assert len(half["callbacks"]["RandomStateCallback"]["ranks"]) == 2
    resumed = run("resumed", 2, f"ckpt_path={tmp_path / 'half' / 'checkpoints' / 'last.ckpt'}")
    for name, tensor in straight["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], tensor), name


@pytest.mark.parametrize("experiment", ["celeba_psp", "celeba_indomain"])
def test_encoder_recipes_train_on_two_processes(experiment, face_generator_checkpoint, tmp_path):
    """pSp (automatic optimisation, DDP's reducer) and the in-domain encoder (manual, averaged
    by hand) keep both ranks' trained weights identical on real faces."""
    run = tmp_path / "run"
    result = run_entry_point(
        "train.py",
        "trainer=ddp_sim",
        f"experiment={experiment}",
        f"data.root={SHARED_DATA / 'faces'}",
        "data.resolution=16",
        "data.batch_size=4",
        f"model.generator.path={face_generator_checkpoint}",
        *CPU_RUN,
        *TINY_MODELS[{"celeba_psp": "PSPModule"}.get(experiment, "InDomainEncoderModule")],
        "trainer.max_steps=6",
        "trainer.limit_val_batches=1",
        "test=false",
        "optimized_metric=null",
        "+callbacks.rank_dump._target_=tests.rank_probe.RankStateDump",
        f"hydra.run.dir={run}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    states = [torch.load(run / f"rank_{r}.pt", weights_only=True)["state_dict"] for r in range(2)]
    trained = [name for name in states[0] if name.startswith(("encoder.", "discriminator."))]
    assert trained and int(states[0]["iteration"]) > 0
    for name in trained:
        if not _per_rank_statistics(name):
            assert torch.equal(states[0][name], states[1][name]), name
