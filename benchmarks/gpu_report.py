"""The GPU benchmark's environment record, peak rates, and its results as a markdown report."""

from __future__ import annotations

import platform
from typing import Any

import pytorch_lightning as pl
import torch

# Dense peak rates (TFLOP/s) of the SXM parts by NVIDIA's datasheets; the H200 has the H100's
# arithmetic. Float32 runs compare with the TF32 peak when `cuda.tf32` is on (the default).
PEAK_TFLOPS = {
    "H200": {"bf16": 989.0, "fp16": 989.0, "tf32": 495.0, "fp32": 67.0},
    "H100": {"bf16": 989.0, "fp16": 989.0, "tf32": 495.0, "fp32": 67.0},
}
# The InvGAN paper's inversion time of its StyleGAN2 latent head at 64 px, on a V100.
PAPER_INVERSION_SECONDS_PER_IMAGE = 1.0e-3


def describe_environment(device: torch.device) -> dict[str, Any]:
    """Versions and the device that the numbers depend on."""
    environment = {
        "device": str(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        environment.update(
            gpu=properties.name,
            capability=f"{properties.major}.{properties.minor}",
            multiprocessors=properties.multi_processor_count,
            memory_gib=round(properties.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    return environment


def math_kind(precision: str, tf32: bool) -> str:
    """The arithmetic that most matrix work runs in, at a Trainer precision with TF32 on or
    off for float32 convolutions."""
    if precision.startswith("bf16"):
        return "bf16"
    if precision.startswith("16"):
        return "fp16"
    return "tf32" if tf32 else "fp32"


def peak_rates(gpu: str | None) -> dict[str, float] | None:
    """The datasheet peaks of a GPU this report knows (by a model name inside its name)."""
    for model, peaks in PEAK_TFLOPS.items():
        if gpu and model in gpu:
            return peaks
    return None


def rate(flops: float | None, seconds: float | None, gpu: str | None, math: str) -> dict:
    """Achieved TFLOP/s and its share of the peaks (the one of the `math` used first)."""
    if not flops or not seconds:
        return {}
    achieved = flops / seconds / 1e12
    result: dict[str, Any] = {"tflops": achieved, "math": math}
    peaks = peak_rates(gpu)
    if peaks:
        result["peaks"] = peaks
        result["percent_of_matching_peak"] = 100 * achieved / peaks[result["math"]]
        result["percent_of_bf16_peak"] = 100 * achieved / peaks["bf16"]
        result["percent_of_tf32_peak"] = 100 * achieved / peaks["tf32"]
    return result


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pair(first: float | None, second: float | None, digits: int = 1) -> str:
    return f"{_number(first, digits)} / {_number(second, digits)}"


def _rate_cell(result: dict) -> str:
    achieved = result.get("rate") or {}
    if not achieved:
        return "-"
    share = achieved.get("percent_of_matching_peak")
    peak = "" if share is None else f" ({share:.1f}% of {achieved['math']} peak)"
    return f"{achieved['tflops']:.3g}{peak}"


def table_row(result: dict) -> str:
    """One configuration as a row of the summary table."""
    plain, trainer = result.get("plain") or {}, result.get("trainer") or {}
    plain_speed, trainer_speed = plain.get("images_per_second"), trainer.get("images_per_second")
    ratio = trainer_speed / plain_speed if plain_speed and trainer_speed else None
    kernels = _pair(
        (result.get("plain_kernels") or {}).get("per_iteration"),
        (result.get("trainer_kernels") or {}).get("per_iteration"),
        0,
    )
    syncs = _pair(
        (result.get("plain_host_syncs") or {}).get("per_iteration"),
        (result.get("trainer_host_syncs") or {}).get("per_iteration"),
        1,
    )
    memory = [plain.get("peak_cuda_mib"), trainer.get("peak_cuda_mib")]
    memory = [value for value in memory if value is not None]
    return (
        f"| {result['config']} | {result.get('precision', '-')} ({result.get('math', '-')}) "
        f"| {result.get('batch_size', '-')} "
        f"| {_number(plain_speed)} | {_number(trainer_speed)} | {_number(ratio, 3)} | {kernels} "
        f"| {syncs} | {_number(max(memory) if memory else None, 0)} | {_rate_cell(result)} |"
    )


def details(result: dict) -> list[str]:
    """The lines under the table for one configuration: top kernels, sync ops, notes, errors."""
    lines = [f"- **{result['config']}** (`{' '.join(result.get('overrides', []))}`)"]
    for phase in ("plain", "trainer"):
        kernels = result.get(f"{phase}_kernels")
        if kernels:
            top = ", ".join(f"{k['name'][:60]} {100 * k['share']:.0f}%" for k in kernels["top"])
            lines.append(
                f"  - {phase} {kernels['unit']}/iteration {kernels['per_iteration']:.0f} "
                f"(+{kernels['copies_per_iteration']:.1f} copies); top 5 by "
                f"{kernels['top_weighed_by']} {100 * kernels['top_share']:.0f}%: {top}"
            )
        syncs = result.get(f"{phase}_host_syncs")
        if syncs and syncs["ops"]:
            lines.append(f"  - {phase} host syncs by op: {syncs['ops']}")
    if result.get("flops_per_iteration"):
        lines.append(
            f"  - {result['flops_per_iteration'] / 1e12:.3g} TFLOP per iteration "
            f"({result.get('flops_source', 'plain loop')}); {_rate_line(result.get('rate'))}"
        )
    inversion = result.get("inversion")
    if inversion:
        paper, here = PAPER_INVERSION_SECONDS_PER_IMAGE, inversion["seconds_per_image"]
        lines.append(
            f"  - latent-head inversion: {here:.2e} s/image at batch {inversion['batch_size']} "
            f"(paper, V100: {paper:.1e} s/image; here {paper / here:.1f}x as fast)"
        )
    lines += [f"  - note: {note}" for note in result.get("notes", [])]
    lines += [f"  - ERROR in {key}: {error}" for key, error in result.get("errors", {}).items()]
    return lines


def _rate_line(achieved: dict | None) -> str:
    if not achieved:
        return "no rate"
    line = f"{achieved['tflops']:.3g} TFLOP/s achieved"
    if "peaks" in achieved:
        peaks = achieved["peaks"]
        line += (
            f": {achieved['percent_of_matching_peak']:.1f}% of the {achieved['math']} peak "
            f"{peaks[achieved['math']]:.0f} (dense bf16 peak {peaks['bf16']:.0f}: "
            f"{achieved['percent_of_bf16_peak']:.1f}%; TF32 peak {peaks['tf32']:.0f}: "
            f"{achieved['percent_of_tf32_peak']:.1f}%)"
        )
    return line


def markdown(results: dict) -> str:
    """The whole report: environment, the summary table, then per-configuration details."""
    environment = results["environment"]
    lines = [
        "# GPU benchmark",
        "",
        "Environment: " + ", ".join(f"{key} {value}" for key, value in environment.items()),
        "",
        "| config | precision | batch | plain images/s | Trainer images/s | Trainer/plain "
        "| kernels/iteration (plain / Trainer) | host syncs/iteration (plain / Trainer) "
        "| peak CUDA MiB | TFLOP/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(table_row(result) for result in results["configs"]),
        "",
        "Precision: the Trainer's, with the arithmetic of its matrix work in brackets. "
        f"Kernels are {results.get('kernel_unit', 'CUDA kernels')}. Timed on one fixed batch "
        "held on the device (random images of the recipe's size); the plain loop is InvGAN's "
        "`backward_iteration` with plain optimizer steps and the EMA update; the Trainer also "
        "runs the recipe's checks, logging and callbacks (checkpoints and image grids left "
        "out). Host syncs in the Trainer are counted around non-logging batches.",
        "",
    ]
    for result in results["configs"]:
        lines += details(result)
    return "\n".join(lines) + "\n"
