"""What one training iteration asks of the device, counted inside a `with` block: kernels
launched (`KernelCounter`), floating-point operations (`flop_counter`), and, through
`invgan.utils.host_syncs.HostSyncCounter`, reads back to the host. `BatchProbes` opens such
counters around single batches of a Lightning fit, `probe_steps` around calls of a plain loop.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from invgan.metrics.runtime import synchronize  # noqa: E402
from invgan.utils.log_steps import logs_this_step  # noqa: E402

# Device events that move or fill memory rather than compute (the profiler names them so).
COPY_EVENT_PREFIXES = ("Memcpy", "Memset")


class _AtenOpCounter(TorchDispatchMode):
    """Counts every aten op dispatched, by name: the CPU's stand-in for kernel launches."""

    def __init__(self, counts: Counter[str]) -> None:
        super().__init__()
        self.counts = counts

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: D105
        self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


class KernelCounter:
    """Within `with KernelCounter(device) as counter:`, `counter.counts` holds the CUDA kernels
    launched, by name, and `counter.microseconds` their device time (torch.profiler). On a CPU
    nothing is launched, so aten ops are counted instead and `unit` says so."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.on_cuda = device.type == "cuda"
        self.unit = "CUDA kernels" if self.on_cuda else "aten ops (CPU run: no kernels)"
        self.counts: Counter[str] = Counter()
        self.microseconds: Counter[str] = Counter()
        self.copies = 0  # memcpy and memset events on the device
        self._context: AbstractContextManager | None = None

    def __enter__(self) -> KernelCounter:
        if self.on_cuda:
            self._context = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
        else:
            self._context = _AtenOpCounter(self.counts)
        self._context.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        synchronize(self.device)  # kernels still queued would be missing from the trace
        self._context.__exit__(*exc)
        if self.on_cuda and exc[0] is None:
            self._read_trace(self._context)

    def _read_trace(self, trace: profile) -> None:
        for event in trace.events():
            # Ranges of record_function (optimizers open one per step) show on the device's
            # timeline too; they are annotations, not work.
            if event.device_type != DeviceType.CUDA or getattr(event, "is_user_annotation", 0):
                continue
            if event.name.startswith(COPY_EVENT_PREFIXES):
                self.copies += 1
                continue
            self.counts[event.name] += 1
            self.microseconds[event.name] += event.time_range.elapsed_us()


def summarize_kernels(counters: list[KernelCounter], iterations: int, top: int = 5) -> dict:
    """Kernels per iteration over `counters` (which covered `iterations` iterations), and the
    `top` names by device time (by count on the CPU) with their share of the total."""
    if not counters:
        raise RuntimeError("no iteration was probed")
    counts, weights, copies = Counter(), Counter(), 0
    for counter in counters:
        counts.update(counter.counts)
        weights.update(counter.microseconds if counter.on_cuda else counter.counts)
        copies += counter.copies
    if not counts:  # e.g. a profiler that saw no device activity: no number beats a zero
        raise RuntimeError(f"no {counters[0].unit} were recorded")
    total = sum(weights.values()) or 1
    leaders = weights.most_common(top)
    return {
        "unit": counters[0].unit,
        "per_iteration": sum(counts.values()) / iterations,
        "copies_per_iteration": copies / iterations,
        "distinct_names": len(counts),
        "top": [{"name": name, "share": weight / total} for name, weight in leaders],
        "top_share": sum(weight for _, weight in leaders) / total,
        "top_weighed_by": "device time" if counters[0].on_cuda else "count",
        "iterations": iterations,
    }


def summarize_host_syncs(counters: list[Any], iterations: int) -> dict:
    """Host syncs per iteration over HostSyncCounters that covered `iterations` iterations."""
    if not counters:
        raise RuntimeError("no iteration was probed")
    ops = Counter()
    for counter in counters:
        ops.update(counter.ops)
    return {
        "per_iteration": sum(ops.values()) / iterations,
        "ops": dict(ops),
        "iterations": iterations,
    }


def flop_counter() -> FlopCounterMode:
    """A FlopCounterMode that prints nothing (matrix products and convolutions, backward too)."""
    return FlopCounterMode(display=False)


def probe_steps(step: Callable[[], None], count: int, context: AbstractContextManager) -> Any:
    """Call `step` `count` times inside `context`; returns what the context entered as."""
    with context as entered:
        for _ in range(count):
            step()
    return entered


class BatchProbes(pl.Callback):
    """Opens counters around single training batches of a fit, from batch `first` on, one
    probe after the other, each `count` times: `probes` maps a name to (factory, count). Batches
    that log are passed over: they do extra work that other batches don't. `results[name]`
    lists what each counter entered as; `errors[name]` says why a counter failed."""

    def __init__(
        self, first: int, probes: dict[str, tuple[Callable[[], AbstractContextManager], int]]
    ) -> None:
        self.first = first
        self.pending = [
            (name, make) for name, (make, count) in probes.items() for _ in range(count)
        ]
        self.results: dict[str, list[Any]] = {name: [] for name in probes}
        self.errors: dict[str, str] = {}
        self._open: tuple[str, AbstractContextManager, Any] | None = None

    @property
    def batches_needed(self) -> int:
        """Batches to run after `first` so that every probe finds its non-logging batches: the
        epoch's last batch logs, and one in `log_every_n_steps` (50 by default)."""
        return len(self.pending) + 2 + len(self.pending) // 25

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        """Close the previous batch's probe (its window runs to this batch: Lightning reads
        logged values after the batch's hooks), open the next pending one on a batch that
        does not log."""
        self._close(keep=True)
        if batch_idx < self.first or not self.pending or logs_this_step(trainer, batch_idx):
            return
        name, make = self.pending.pop(0)
        try:
            context = make()
            self._open = (name, context, context.__enter__())
        except Exception as error:  # a broken counter must not stop the fit it watches
            self.errors[name] = f"{type(error).__name__}: {error}"

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Close the last batch's probe."""
        self._close(keep=True)

    def on_exception(self, trainer, pl_module, exception) -> None:
        """Close an open probe: a dispatch mode left open would catch every later op."""
        self._close(keep=False)

    def _close(self, keep: bool) -> None:
        if self._open is None:
            return
        name, context, entered = self._open
        self._open = None
        try:
            context.__exit__(None, None, None)
        except Exception as error:  # as above: keep the fit going, report the probe's error
            self.errors[name] = f"{type(error).__name__}: {error}"
            return
        if keep:
            self.results[name].append(entered)
