"""Training speed of the InvGAN recipe, side by side in one run:

- plain: a bare PyTorch loop over the module's networks and losses (`backward_iteration`),
  plain optimizers and the EMA update, under the autocast of the configured precision; no
  Trainer, logging or checks;
- lightning: the same module fitted by the configured Lightning Trainer, with the configured
  logger and callbacks except the interval I/O ones (checkpoints, image grids), so the cost of
  the framework (loop, logging, non-finite guard, progress bar, timing) is what differs;
- loader: the configured datamodule's training loader alone (decoding, augmentation,
  collation, transfer to the device).

Both training phases get the same fixed batch, held on the device. Each phase runs in a fresh
process, so the peak memory reported is that phase's own (resident set size; on CUDA also the
peak allocated by PyTorch). The two training phases alternate `--repeats` times and each
reports its median, so that drifts of the machine's speed hit both alike. Usage (any train.py
overrides; the recipe must be InvGAN):

    python benchmarks/training_speed.py [--iterations 200] [--warmup 20] [--repeats 3] \
        [--out DIR] [experiment=mnist_dcgan_invgan trainer.accelerator=cpu data.num_workers=2 ...]

Writes DIR/training_speed.json and DIR/training_speed.md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict
from torch.utils.data import DataLoader, Dataset

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from invgan.metrics.runtime import synchronize  # noqa: E402
from invgan.modules.invgan import InvGANModule  # noqa: E402
from invgan.utils.cuda_backend import apply_cuda_settings  # noqa: E402
from invgan.utils.images import batch_images, to_signed_range  # noqa: E402
from invgan.utils.instantiate import (  # noqa: E402
    instantiate_callbacks,
    instantiate_datamodule,
    instantiate_loggers,
)

# Callbacks that write files at intervals: left out, their cost depends on the interval.
INTERVAL_IO_CALLBACKS = ("model_checkpoint", "last_checkpoint", "image_grids")


def compose_train(overrides: list[str], output_dir: Path) -> DictConfig:
    """train.yaml composed with `overrides`, writing (logs) under `output_dir`."""
    with initialize_config_dir(str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=[*overrides, f"paths.output_dir={output_dir}"])


def device_of(cfg: DictConfig) -> torch.device:
    """The device the trainer config asks for (`auto` picks CUDA when there is one)."""
    accelerator = cfg.trainer.accelerator
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


# Trainer precisions the plain loop reproduces, and the autocast dtype of each (None: off).
PLAIN_LOOP_AUTOCAST = {"32-true": None, "32": None, "bf16-mixed": torch.bfloat16}


def plain_loop_autocast(cfg: DictConfig, device: torch.device) -> torch.autocast:
    """The autocast that Lightning applies around training steps at the configured precision."""
    precision = str(cfg.trainer.precision)
    if precision not in PLAIN_LOOP_AUTOCAST:
        raise SystemExit(
            f"the plain loop reproduces trainer.precision {sorted(PLAIN_LOOP_AUTOCAST)}, "
            f"not {precision!r}; pass one of those"
        )
    dtype = PLAIN_LOOP_AUTOCAST[precision]
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def peak_memory(device: torch.device) -> dict[str, float]:
    """Peak resident set size of this process and, on CUDA, PyTorch's peak allocation (MiB)."""
    scale = 1024 if platform.system() == "Linux" else 1024 * 1024  # ru_maxrss: KiB or bytes
    memory = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale}
    if device.type == "cuda":
        memory["peak_cuda_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return memory


def build_module(cfg: DictConfig, device: torch.device) -> pl.LightningModule:
    """The configured recipe, seeded, on `device`, in training mode, with the configured CUDA
    backend settings (TF32, cuDNN benchmark) in force, as train.py runs it."""
    if "cuda" in cfg:
        apply_cuda_settings(**cfg.cuda)
    pl.seed_everything(cfg.seed, workers=True)
    return hydra.utils.instantiate(cfg.model).to(device).train()


def has_plain_loop(module: pl.LightningModule) -> bool:
    """Whether the bare loop applies: it drives InvGAN's `backward_iteration`."""
    return isinstance(module, InvGANModule)


def fixed_batch(cfg: DictConfig, device: torch.device) -> torch.Tensor:
    """The first training batch of the configured data, on `device`."""
    datamodule = instantiate_datamodule(cfg.data)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    return batch_images(batch).to(device)


def plain_loop_step(
    cfg: DictConfig, module: InvGANModule, real: torch.Tensor
) -> Callable[[], None]:
    """One iteration of the bare loop on `real` ([-1, 1]) as a function: both phases'
    backward under the configured autocast, plain optimizer steps and the EMA update."""
    device = real.device
    optimizers, _ = module.configure_optimizers()

    def step() -> None:
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        with plain_loop_autocast(cfg, device):
            module.backward_iteration(real, lambda loss, **options: loss.backward(**options))
        for optimizer in optimizers:
            optimizer.step()
        module.update_ema_networks()
        # Recipes that keep a host copy of the counter (so that schedules read no device
        # value) advance both with `count_iteration`; earlier ones have the buffer alone.
        if hasattr(module, "count_iteration"):
            module.count_iteration()
        else:
            module.iteration += 1

    return step


def seconds_per_step(
    step: Callable[[], None], iterations: int, warmup: int, device: torch.device
) -> float:
    """Wall-clock seconds per call of `step`, the mean over `iterations` calls after `warmup`
    untimed ones, queued device work included."""
    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / iterations


def time_plain_loop(cfg: DictConfig, iterations: int, warmup: int) -> dict[str, Any]:
    """Images/s of a bare PyTorch loop over the module's networks and losses."""
    device = device_of(cfg)
    module = build_module(cfg, device)
    if not has_plain_loop(module):
        raise SystemExit(f"the benchmark times the InvGAN recipe; {cfg.model._target_} is not it")
    batch = fixed_batch(cfg, device)
    step = plain_loop_step(cfg, module, to_signed_range(batch))
    seconds = seconds_per_step(step, iterations, warmup, device)
    return {"images_per_second": batch.shape[0] / seconds, **peak_memory(device)}


class RepeatedBatch(Dataset):
    """The same batch `length` times (a loader with batch_size=None yields it as it is)."""

    def __init__(self, batch: torch.Tensor, length: int) -> None:
        self.batch = batch
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.batch


class IterationClock(pl.Callback):
    """Wall-clock time from the start of batch `warmup` to the start of batch
    `warmup + iterations` (with `iterations` None, or a shorter run: to the end of fitting)."""

    def __init__(self, warmup: int, device: torch.device, iterations: int | None = None) -> None:
        self.warmup = warmup
        self.device = device
        self.stop_batch = None if iterations is None else warmup + iterations
        self.start = self.end = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        """Start the clock after the warm-up batches, stop it after the timed ones."""
        if batch_idx == self.warmup:
            synchronize(self.device)
            self.start = time.perf_counter()
        elif batch_idx == self.stop_batch:
            self._stop()

    def on_train_end(self, trainer, pl_module) -> None:
        """Stop it when fitting ends, unless it stopped before."""
        if not self.end:
            self._stop()

    def _stop(self) -> None:
        synchronize(self.device)
        self.end = time.perf_counter()


def fit_repeated_batch(
    cfg: DictConfig,
    module: pl.LightningModule,
    batch: torch.Tensor,
    length: int,
    callbacks: Sequence[pl.Callback] = (),
) -> pl.Trainer:
    """Fit `module` for one epoch of `length` copies of `batch` with the configured Trainer,
    loggers and callbacks, less the interval I/O ones, plus `callbacks`."""
    with open_dict(cfg):
        for name in INTERVAL_IO_CALLBACKS:
            cfg.callbacks.pop(name, None)
    loggers = instantiate_loggers(cfg.get("logger"))
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=[*instantiate_callbacks(cfg.callbacks), *callbacks],
        logger=loggers or False,
        enable_checkpointing=False,
        enable_model_summary=False,
        max_epochs=1,
        max_steps=-1,
        max_time=None,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, DataLoader(RepeatedBatch(batch, length), batch_size=None))
    return trainer


def time_lightning(cfg: DictConfig, iterations: int, warmup: int) -> dict[str, Any]:
    """Images/s of the module fitted by the configured Trainer on the fixed batch."""
    device = device_of(cfg)
    module = build_module(cfg, device)
    batch = fixed_batch(cfg, device)
    clock = IterationClock(warmup, device)
    fit_repeated_batch(cfg, module, batch, warmup + iterations, [clock])
    seconds = clock.end - clock.start
    return {"images_per_second": iterations * batch.shape[0] / seconds, **peak_memory(device)}


def time_loader(cfg: DictConfig, iterations: int, warmup: int) -> dict[str, Any]:
    """Images/s of the training loader alone, batches moved to the training device."""
    device = device_of(cfg)
    datamodule = instantiate_datamodule(cfg.data)
    datamodule.setup("fit")
    images = 0
    batches = iter(datamodule.train_dataloader())
    for step in range(warmup + iterations):
        if step == warmup:
            start = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:  # a short epoch: start another
            batches = iter(datamodule.train_dataloader())
            batch = next(batches)
        tensor = batch_images(batch)
        tensor.to(device, non_blocking=True)
        if step >= warmup:
            images += tensor.shape[0]
    synchronize(device)
    seconds = time.perf_counter() - start
    return {"images_per_second": images / seconds, **peak_memory(device)}


PHASES = {"plain": time_plain_loop, "lightning": time_lightning, "loader": time_loader}


def run_phase(name: str, cfg: DictConfig, iterations: int, warmup: int) -> dict[str, Any]:
    """One phase in a fresh process (its own peak memory, no state shared with the others)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(PHASES[name], (cfg, iterations, warmup))


def median_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median images/s, with every run's images/s beside it."""
    ordered = sorted(results, key=lambda result: result["images_per_second"])
    median = ordered[(len(ordered) - 1) // 2]
    return {**median, "all_images_per_second": [r["images_per_second"] for r in results]}


def markdown(results: dict[str, Any]) -> str:
    """The results as a markdown table plus the ratios the targets are stated in."""
    phases = results["phases"]
    lines = [
        "| phase | images/s (median) | every run | peak RSS (MiB) | peak CUDA allocated (MiB) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in PHASES:
        phase = phases[name]
        cuda = phase.get("peak_cuda_allocated_mib")
        every = ", ".join(f"{speed:.1f}" for speed in phase["all_images_per_second"])
        lines.append(
            f"| {name} | {phase['images_per_second']:.1f} | {every} | "
            f"{phase['peak_rss_mib']:.0f} | {'-' if cuda is None else f'{cuda:.0f}'} |"
        )
    lines += [
        "",
        f"- Lightning / plain loop: **{results['lightning_over_plain']:.3f}x** (target >= 0.95)",
        f"- loader / model (plain loop): **{results['loader_over_model']:.1f}x** (target > 1: "
        "the loader is never the bottleneck)",
        f"- {results['iterations']} timed iterations after {results['warmup']} warm-up (training "
        f"phases alternated {results['repeats']} times), batch "
        f"{results['batch_size']}, device {results['device']}, torch {results['torch']}, "
        f"{results['threads']} threads",
        f"- overrides: `{' '.join(results['overrides']) or '(defaults)'}`",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse the arguments, run the three phases, write and print the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("logs/benchmarks/training_speed"))
    args, overrides = parser.parse_known_args()
    cfg = compose_train(overrides, args.out / "run")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in PHASES}
    for _ in range(args.repeats):
        for name in ("plain", "lightning"):
            runs[name].append(run_phase(name, cfg, args.iterations, args.warmup))
    runs["loader"].append(run_phase("loader", cfg, args.iterations, args.warmup))
    phases = {name: median_run(results) for name, results in runs.items()}
    results = {
        "phases": phases,
        "lightning_over_plain": phases["lightning"]["images_per_second"]
        / phases["plain"]["images_per_second"],
        "loader_over_model": phases["loader"]["images_per_second"]
        / phases["plain"]["images_per_second"],
        "iterations": args.iterations,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "batch_size": int(cfg.data.batch_size),
        "device": str(device_of(cfg)),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "overrides": overrides,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "training_speed.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "training_speed.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
