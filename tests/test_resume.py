"""Resuming from last.ckpt continues a run exactly, and a run restarted in its own folder
picks its last.ckpt up by itself (a re-queued SLURM job)."""

from __future__ import annotations

from pathlib import Path

import hydra
import torch

from invgan.nn.stylegan2.modulated_conv import ModulatedConv2d
from invgan.training.pipeline import train


def _final_state(cfg) -> dict[str, torch.Tensor]:
    train(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    return torch.load(last, weights_only=True)["state_dict"]


def test_half_then_resume_then_half_equals_the_straight_run(train_config):
    common = ["data=synthetic", "test=false", "callbacks.image_grids.every_n_iterations=1000"]
    straight = _final_state(train_config(*common, "trainer.max_epochs=2"))
    first_half = train_config(*common, "trainer.max_epochs=1")
    half = _final_state(first_half)
    assert int(half["iteration"]) * 2 == int(straight["iteration"])
    last = Path(first_half.paths.output_dir) / "checkpoints" / "last.ckpt"
    resumed = _final_state(train_config(*common, "trainer.max_epochs=2", f"ckpt_path={last}"))
    # Optimizer moments, EMA, counters, generator states, data order: bit for bit on CPU.
    assert resumed.keys() == straight.keys()
    for name, tensor in straight.items():
        assert torch.equal(resumed[name], tensor), name


def test_a_run_stopped_mid_epoch_resumes_at_the_same_batch(train_config):
    # 16 batches an epoch: the first run stops after 10, the others go on to 24 (8 into the
    # second epoch); two optimizer steps per InvGAN iteration.
    common = ["data=synthetic", "test=false", "callbacks.image_grids.every_n_iterations=1000"]
    straight = _final_state(train_config(*common, "trainer.max_steps=48"))
    first_part = train_config(*common, "trainer.max_steps=20")
    assert int(_final_state(first_part)["iteration"]) == 10
    last = Path(first_part.paths.output_dir) / "checkpoints" / "last.ckpt"
    resumed = _final_state(train_config(*common, "trainer.max_steps=48", f"ckpt_path={last}"))
    for name, tensor in straight.items():
        assert torch.equal(resumed[name], tensor), name


def test_a_run_started_again_in_its_folder_resumes_from_its_last_checkpoint(train_config):
    common = ["data=synthetic", "test=false", "callbacks.image_grids.every_n_iterations=1000"]
    first = train_config(*common, "trainer.max_epochs=1")
    iterations = int(_final_state(first)["iteration"])
    again = first.copy()
    again.trainer.max_epochs = 2
    assert int(_final_state(again)["iteration"]) == 2 * iterations
    again.auto_resume = False  # a fresh start, replacing the folder's run
    again.overwrite = True
    again.trainer.max_epochs = 1
    assert int(_final_state(again)["iteration"]) == iterations


def test_optimizer_moments_saved_in_the_official_stylegan2_layout_resume(train_config, tmp_path):
    """Checkpoints of the first release held StyleGAN2's modulated-convolution weights, and so
    their Adam moments, in the official (1, out, in, k, k) layout: they resume exactly as a
    checkpoint in today's layout."""
    common = ["model=invgan_stylegan2", "data=synthetic", "test=false", "data.batch_size=4"]
    first = train_config(*common, "trainer.max_steps=4")
    train(first)
    last = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    module = hydra.utils.instantiate(first.model)
    convs = {id(m.weight): m for m in module.modules() if isinstance(m, ModulatedConv2d)}
    groups = [module._generator_side_parameters(), list(module.discriminator.parameters())]
    converted = 0
    for state, parameters in zip(checkpoint["optimizer_states"], groups, strict=True):
        for index, parameter in enumerate(parameters):
            conv = convs.get(id(parameter))
            if conv is None:
                continue
            for name, value in state["state"][index].items():
                if value.shape == parameter.shape:
                    official = value.transpose(0, 1) if conv.upsample else value
                    state["state"][index][name] = official.unsqueeze(0).contiguous()
                    converted += 1
    assert converted > 0
    old = tmp_path / "first_release.ckpt"
    torch.save(checkpoint, old)
    resumed = [
        _final_state(train_config(*common, "trainer.max_steps=8", f"ckpt_path={path}"))
        for path in (last, old)
    ]
    for name, tensor in resumed[0].items():
        assert torch.equal(resumed[1][name], tensor), name
