"""Count the device-to-host reads a piece of code makes, on any device (the CPU included).

On a GPU each such read (`.item()`, `float(t)`, `int(t)`, `bool(t)`, `.tolist()`, `.numpy()`,
an op whose output shape depends on the data) stalls the host until the device has caught up,
so a training iteration that makes one cannot queue the next iteration's kernels ahead. On the
CPU the same code makes the same calls, so counting them there tells how a GPU run would
behave: the aten ops below are the dispatcher's entries for those reads, and `.tolist()` /
`.numpy()` (which dispatch nothing for a CPU tensor) are counted at the Python level.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# Ops that read a device value on the host, or whose output shape depends on device values.
SYNCING_OPS = {
    aten._local_scalar_dense.default,  # item(), float(t), int(t), bool(t)
    aten.is_nonzero.default,
    aten.equal.default,
    aten.nonzero.default,
    aten.nonzero_static.default,
    aten.masked_select.default,
    aten.unique_dim.default,
    aten._unique2.default,
    aten.unique_consecutive.default,
    aten.repeat_interleave.Tensor,
}


def _is_boolean_index(func: Any, args: tuple[Any, ...]) -> bool:
    """x[mask] with a boolean mask: the result's size is the number of True entries."""
    if func is not aten.index.Tensor:
        return False
    return any(isinstance(index, torch.Tensor) and index.dtype == torch.bool for index in args[1])


def _on_device(args: tuple[Any, ...], device_type: str | None) -> bool:
    """Whether the op reads a tensor of `device_type` (any device when None)."""
    if device_type is None:
        return True
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    return any(t.device.type == device_type for t in tensors)


class HostSyncCounter(TorchDispatchMode):
    """Within `with HostSyncCounter() as counter:`, `counter.count` is the number of
    device-to-host reads and `counter.ops` counts them by name.

    With `device_type` (e.g. "cuda") only reads of tensors on that kind of device count, so
    that reads of values already copied to the host (logged values) are told apart; on a CPU
    run every read counts, as every tensor is on the host.
    """

    def __init__(self, device_type: str | None = None) -> None:
        super().__init__()
        self.device_type = device_type
        self.ops: Counter[str] = Counter()

    @property
    def count(self) -> int:
        """All the reads counted so far."""
        return sum(self.ops.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: D105
        if (func in SYNCING_OPS or _is_boolean_index(func, args)) and _on_device(
            args, self.device_type
        ):
            self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))

    def __enter__(self) -> HostSyncCounter:
        self._patches = contextlib.ExitStack()
        self._patches.enter_context(_counting_python_reads(self.ops, self.device_type))
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        self._patches.close()


@contextlib.contextmanager
def _counting_python_reads(ops: Counter[str], device_type: str | None) -> Iterator[None]:
    """Count `Tensor.tolist` and `Tensor.numpy`, which copy to the host without a dispatch on
    a CPU tensor."""
    originals = {name: getattr(torch.Tensor, name) for name in ("tolist", "numpy")}

    def counting(name: str):
        def read(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if _on_device((tensor,), device_type):
                ops[f"Tensor.{name}"] += 1
            return originals[name](tensor, *args, **kwargs)

        return read

    try:
        for name in originals:
            setattr(torch.Tensor, name, counting(name))
        yield
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
