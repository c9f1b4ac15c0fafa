"""Training speed of every recipe on one GPU, in one process (CUDA starts once):

- images/s of the bare loop and of the Lightning Trainer on a fixed batch held on the device
  (the two phases of benchmarks/training_speed.py), and their ratio;
- CUDA kernels per iteration (torch.profiler) with the top 5 kernels' share of device time;
- host syncs per iteration (invgan.utils.host_syncs.HostSyncCounter), in the bare loop and
  around non-logging Trainer batches;
- peak CUDA memory, FLOPs of one iteration (FlopCounterMode) and the TFLOP/s achieved, against
  the H200's peaks;
- the StyleGAN2 latent head's inversion time per image (paper: 1.0e-3 s on a V100).

Without CUDA it runs on the CPU (trainer=cpu) and counts aten ops in place of kernels; `--tiny`
shrinks the networks so that the whole run takes a minute or two on two cores. Usage:

    python benchmarks/gpu_benchmark.py [--out DIR] [--configs mnist_dcgan,stylegan2_64,...] \
        [--iterations N] [--warmup N] [--tiny] [train.py overrides for every configuration]

Writes DIR/gpu_benchmark.json and DIR/gpu_benchmark.md after each configuration (a run cut
short keeps what it measured) and prints the summary table at the end.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_probes import (  # noqa: E402
    BatchProbes,
    KernelCounter,
    flop_counter,
    probe_steps,
    summarize_host_syncs,
    summarize_kernels,
)
from gpu_report import describe_environment, markdown, math_kind, rate  # noqa: E402
from training_speed import (  # noqa: E402
    IterationClock,
    build_module,
    compose_train,
    device_of,
    fit_repeated_batch,
    has_plain_loop,
    peak_memory,
    plain_loop_step,
    seconds_per_step,
)

from invgan.metrics.runtime import measure_seconds_per_item  # noqa: E402
from invgan.utils.cuda_backend import cuda_settings  # noqa: E402
from invgan.utils.host_syncs import HostSyncCounter  # noqa: E402
from invgan.utils.images import to_signed_range  # noqa: E402

# Iterations each probe covers: counting slows iterations down, so probes run after timing.
KERNEL_ITERATIONS, SYNC_ITERATIONS = 3, 3
# Trainer batches per probe (kernels: one profiler session per batch).
TRAINER_KERNEL_BATCHES, TRAINER_SYNC_BATCHES = 2, 3
BASE_OVERRIDES = ("trainer.enable_progress_bar=false",)  # tqdm redraws would fill the log

# CPU-sized networks for --tiny (the tests' tiny sizes; BigGAN shares DCGAN's option names).
TINY_DCGAN = (
    "model.mapping.z_dim=16",
    "model.mapping.w_dim=16",
    "model.mapping.hidden_dim=32",
    "model.generator.base_width=8",
    "model.discriminator.base_width=8",
    "model.discriminator.latent_hidden_dim=32",
)
TINY_STYLEGAN2 = (
    "model.generator.w_dim=16",
    "model.generator.n_mlp=2",
    "model.generator.channel_base=256",
    "model.generator.channel_max=16",
    "model.generator.channel_multiplier=1",
    "data.batch_size=8",
)


@dataclass(frozen=True)
class Spec:
    """One configuration: its train.py overrides, how long to time it, a CPU-sized variant."""

    name: str
    overrides: tuple[str, ...]
    iterations: int
    warmup: int
    tiny: tuple[str, ...]
    tiny_iterations: int = 3
    inversion_batch: int = 0  # > 0: time the latent head's inversion of this many images
    # An encoder recipe's frozen generator: the InvGAN experiment whose (random) generator is
    # written to a file for it, at the recipe's resolution.
    generator_experiment: str | None = None


SPECS = (
    Spec(
        "mnist_dcgan",
        ("experiment=mnist_dcgan_invgan",),
        200,
        20,
        (*TINY_DCGAN, "data.batch_size=16"),
        5,
    ),
    Spec(
        # The Trainer records each iteration as a CUDA graph (the bare loop stays eager).
        "mnist_dcgan_captured",
        ("experiment=mnist_dcgan_invgan", "callbacks.capture.enabled=true"),
        200,
        20,
        (*TINY_DCGAN, "data.batch_size=16"),
        5,
    ),
    Spec(
        "stylegan2_64",
        ("experiment=celeba_stylegan_invgan",),
        30,
        5,
        (*TINY_STYLEGAN2, "data.resolution=16"),
        inversion_batch=256,
    ),
    Spec(
        "stylegan2_64_bf16",
        ("experiment=celeba_stylegan_invgan", "trainer.precision=bf16-mixed"),
        30,
        5,
        (*TINY_STYLEGAN2, "data.resolution=16"),
    ),
    Spec(
        "stylegan2_128",
        ("experiment=celeba_stylegan_invgan", "data.resolution=128"),
        15,
        3,
        (*TINY_STYLEGAN2, "data.resolution=32"),
    ),
    Spec(
        "biggan_patches",
        ("experiment=imagenet_biggan_patches",),
        100,
        10,
        (*TINY_DCGAN, "data.batch_size=16"),
        5,
    ),
    Spec(
        "psp_256",
        # The identity loss needs ArcFace weights that the benchmark does not carry.
        ("experiment=ffhq_psp", "data.resolution=256", "model.id_weight=0"),
        30,
        5,
        (
            "data.resolution=32",
            "data.batch_size=4",
            "model.encoder.blocks=[1,1,1,1]",
            "model.encoder.base_width=8",
            "model.generator.latent_avg_samples=2000",
        ),
        generator_experiment="ffhq_stylegan_invgan",
    ),
)


def random_batch(cfg: DictConfig, device: torch.device) -> torch.Tensor:
    """A seeded batch of uniform [0, 1] images of the configured size: no dataset needed, and
    the networks' speed does not depend on what the pixels show."""
    data = cfg.data
    shape = (int(data.batch_size), int(data.channels), int(data.resolution), int(data.resolution))
    generator = torch.Generator().manual_seed(int(cfg.seed))
    return torch.rand(shape, generator=generator).to(device)


def write_random_generator(
    experiment: str, cfg: DictConfig, tiny: bool, path: Path, work_dir: Path
) -> Path:
    """A rosinality-format file (`g_ema`) of the `experiment` recipe's generator at `cfg`'s
    resolution and channels, with random weights: encoder recipes need a frozen generator,
    and their speed does not depend on its weights."""
    overrides = [
        f"experiment={experiment}",
        f"data.resolution={cfg.data.resolution}",
        f"data.channels={cfg.data.channels}",
        *(TINY_STYLEGAN2 if tiny else ()),
    ]
    generator_cfg = compose_train(overrides, work_dir / "generator")
    pl.seed_everything(int(generator_cfg.seed))
    generator = hydra.utils.instantiate(generator_cfg.model.generator)
    torch.save({"g_ema": generator.state_dict()}, path)
    return path


def lpips_weights_missing(cfg: DictConfig) -> bool:
    """Whether the recipe uses LPIPS but its local weights file is not there (no download)."""
    if float(cfg.model.get("lpips_weight", 0) or 0) <= 0:
        return False
    weights = OmegaConf.select(cfg, "model.perceptual.weights_path")
    return not weights or not Path(str(weights)).is_file()


def attempt(result: dict[str, Any], key: str, measure: Callable[[], Any]) -> Any:
    """`measure()`, stored as `result[key]` unless None (measurements that store their own
    keys); a failure is printed and kept under `result["errors"]`, so that the next
    measurement still runs."""
    try:
        value = measure()
    except (Exception, SystemExit) as error:  # one failure must not end a one-shot run
        traceback.print_exc()
        result.setdefault("errors", {})[key] = f"{type(error).__name__}: {error}"
        return None
    if value is not None:
        result[key] = value
    return value


def free_device_memory(device: torch.device) -> None:
    """Drop cached blocks and start a new peak, so the next measurement's peak is its own."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_cuda_mib(device: torch.device) -> float | None:
    """PyTorch's peak CUDA allocation since the last reset (None on the CPU)."""
    return peak_memory(device).get("peak_cuda_allocated_mib")


def sync_counter(device: torch.device) -> HostSyncCounter:
    """Counts reads of the training device's tensors (on a GPU, reads of values already on the
    host, such as logged ones, are free; on the CPU every read counts)."""
    return HostSyncCounter(device.type if device.type != "cpu" else None)


def measure_plain_loop(
    cfg: DictConfig,
    module: pl.LightningModule,
    batch: torch.Tensor,
    counts: tuple[int, int],
    result: dict[str, Any],
) -> None:
    """Time the bare loop, then count its kernels, host syncs and FLOPs per iteration."""
    device = batch.device
    iterations, warmup = counts
    step = plain_loop_step(cfg, module, to_signed_range(batch))
    free_device_memory(device)
    seconds = seconds_per_step(step, iterations, warmup, device)
    result["plain"] = {
        "seconds_per_iteration": seconds,
        "images_per_second": batch.shape[0] / seconds,
        "iterations": iterations,
        "warmup": warmup,
        "peak_cuda_mib": peak_cuda_mib(device),
    }
    attempt(
        result,
        "plain_kernels",
        lambda: summarize_kernels(
            [probe_steps(step, KERNEL_ITERATIONS, KernelCounter(device))], KERNEL_ITERATIONS
        ),
    )
    attempt(
        result,
        "plain_host_syncs",
        lambda: summarize_host_syncs(
            [probe_steps(step, SYNC_ITERATIONS, sync_counter(device))], SYNC_ITERATIONS
        ),
    )
    attempt(
        result,
        "flops_per_iteration",
        lambda: probe_steps(step, 1, flop_counter()).get_total_flops(),
    )


def measure_inversion(module: pl.LightningModule, cfg: DictConfig, count: int) -> dict:
    """Seconds per image of the latent head's inversion of `count` images (median batch)."""
    data = cfg.data
    shape = (count, int(data.channels), int(data.resolution), int(data.resolution))
    images = to_signed_range(torch.rand(shape, device=module.device))
    return measure_seconds_per_item(module.encode, images, warmup=3, repeats=10)


def measure_trainer(
    cfg: DictConfig,
    module: pl.LightningModule,
    batch: torch.Tensor,
    counts: tuple[int, int],
    result: dict[str, Any],
    count_flops: bool,
) -> None:
    """Time the Trainer's fit on the fixed batch; then, on the batches after the timed ones,
    count kernels and host syncs (and FLOPs when the bare loop did not) per batch."""
    device = batch.device
    iterations, warmup = counts
    clock = IterationClock(warmup, device, iterations)
    probes = {
        "host_syncs": (lambda: sync_counter(device), TRAINER_SYNC_BATCHES),
        "kernels": (lambda: KernelCounter(device), TRAINER_KERNEL_BATCHES),
    }
    if count_flops:
        probes["flops"] = (flop_counter, 1)
    batch_probes = BatchProbes(warmup + iterations, probes)
    free_device_memory(device)
    length = warmup + iterations + batch_probes.batches_needed
    fit_repeated_batch(cfg, module, batch, length, [clock, batch_probes])
    seconds = (clock.end - clock.start) / iterations
    result["trainer"] = {
        "seconds_per_iteration": seconds,
        "images_per_second": batch.shape[0] / seconds,
        "iterations": iterations,
        "warmup": warmup,
        "peak_cuda_mib": peak_cuda_mib(device),
    }
    for name, error in batch_probes.errors.items():
        result.setdefault("errors", {})[f"trainer_{name}_probe"] = error
    found = batch_probes.results
    attempt(
        result,
        "trainer_kernels",
        lambda: summarize_kernels(found["kernels"], len(found["kernels"])),
    )
    attempt(
        result,
        "trainer_host_syncs",
        lambda: summarize_host_syncs(found["host_syncs"], len(found["host_syncs"])),
    )
    if count_flops and found["flops"]:
        result["flops_per_iteration"] = found["flops"][0].get_total_flops()
        result["flops_source"] = "one Trainer batch"


def configure(
    spec: Spec, args: argparse.Namespace, extra: list[str], work_dir: Path
) -> tuple[DictConfig, list[str], tuple[int, int], list[str]]:
    """The composed config of `spec`, its (iterations, warmup), and notes on what changed."""
    device_type = "gpu" if torch.cuda.is_available() else "cpu"
    overrides = [
        *spec.overrides,
        *(spec.tiny if args.tiny else ()),
        f"trainer={device_type}",
        *BASE_OVERRIDES,
        *extra,
    ]
    cfg = compose_train(overrides, work_dir / spec.name)
    notes = []
    if spec.generator_experiment:
        path = work_dir / f"{spec.name}_generator.pt"
        write_random_generator(spec.generator_experiment, cfg, args.tiny, path, work_dir)
        OmegaConf.update(cfg, "model.generator.path", str(path))
        notes.append(f"frozen generator: random-weights {spec.generator_experiment} generator")
    if lpips_weights_missing(cfg):
        with open_dict(cfg):
            cfg.model.lpips_weight = 0.0
        notes.append("LPIPS off (model.lpips_weight=0): its weights file is not here")
    iterations = args.iterations or (spec.tiny_iterations if args.tiny else spec.iterations)
    warmup = args.warmup if args.warmup is not None else (1 if args.tiny else spec.warmup)
    return cfg, overrides, (iterations, warmup), notes


def benchmark(spec: Spec, args: argparse.Namespace, extra: list[str], work_dir: Path) -> dict:
    """Every measurement of one configuration; failures are recorded, not raised."""
    result: dict[str, Any] = {"config": spec.name}
    cfg, overrides, counts, notes = configure(spec, args, extra, work_dir)
    device = device_of(cfg)
    result.update(
        overrides=overrides,
        notes=notes,
        precision=str(cfg.trainer.precision),
        batch_size=int(cfg.data.batch_size),
        resolution=int(cfg.data.resolution),
    )
    batch = random_batch(cfg, device)
    module = build_module(cfg, device)
    tf32 = device.type == "cuda" and torch.backends.cudnn.allow_tf32
    result.update(cuda=cuda_settings(), math=math_kind(result["precision"], tf32))
    plain = has_plain_loop(module)
    if plain:
        attempt(
            result, "plain_loop", lambda: measure_plain_loop(cfg, module, batch, counts, result)
        )
        if spec.inversion_batch:
            count = min(spec.inversion_batch, 32) if args.tiny else spec.inversion_batch
            attempt(result, "inversion", lambda: measure_inversion(module, cfg, count))
    else:
        notes.append("plain loop n/a (it drives InvGAN's backward_iteration): Trainer timed alone")
    del module
    free_device_memory(device)
    module = build_module(cfg, device)
    attempt(
        result,
        "trainer_fit",
        lambda: measure_trainer(cfg, module, batch, counts, result, count_flops=not plain),
    )
    seconds = (result.get("plain") or result.get("trainer") or {}).get("seconds_per_iteration")
    gpu = describe_environment(device).get("gpu")
    result["rate"] = rate(result.get("flops_per_iteration"), seconds, gpu, result["math"])
    return result


def write_results(out: Path, results: dict) -> str:
    """Write the JSON and markdown reports; returns the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_benchmark.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    report = markdown(results)
    (out / "gpu_benchmark.md").write_text(report)
    return report


def main() -> None:
    """Parse the arguments, benchmark each configuration, write and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("logs/benchmarks/gpu_benchmark"))
    parser.add_argument("--configs", default=",".join(spec.name for spec in SPECS))
    parser.add_argument("--iterations", type=int, default=None, help="timed, every config")
    parser.add_argument("--warmup", type=int, default=None, help="untimed, every config")
    parser.add_argument("--tiny", action="store_true", help="CPU-sized networks and runs")
    args, extra = parser.parse_known_args()
    chosen = args.configs.split(",")
    unknown = sorted(set(chosen) - {spec.name for spec in SPECS})
    if unknown:
        raise SystemExit(f"unknown --configs {unknown}; known: {[s.name for s in SPECS]}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    environment = describe_environment(device)
    print("environment:", json.dumps(environment), flush=True)
    unit = KernelCounter(device).unit
    results: dict[str, Any] = {"environment": environment, "kernel_unit": unit, "configs": []}
    work_dir = Path(tempfile.mkdtemp(prefix="invgan_gpu_benchmark_"))
    for spec in (spec for spec in SPECS if spec.name in chosen):
        print(f"\n=== {spec.name} ===", flush=True)
        start = time.perf_counter()
        try:
            result = benchmark(spec, args, extra, work_dir)
        except (Exception, SystemExit) as error:  # the next configuration still runs
            traceback.print_exc()
            result = {
                "config": spec.name,
                "errors": {"config": f"{type(error).__name__}: {error}"},
            }
        result["wall_seconds"] = time.perf_counter() - start
        results["configs"].append(result)
        write_results(args.out, results)
        print(f"{spec.name}: {result['wall_seconds']:.1f} s", flush=True)
        free_device_memory(device)
    shutil.rmtree(work_dir, ignore_errors=True)  # run logs and generator files
    print("\n" + write_results(args.out, results), flush=True)


if __name__ == "__main__":
    main()
