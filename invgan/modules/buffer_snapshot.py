"""Put buffers back as they were, decided on the device (no read to the host)."""

from __future__ import annotations

from collections.abc import Iterable

import torch


class BufferSnapshot:
    """A copy of some buffers (batch-norm statistics, spectral-norm vectors: what training-mode
    forward passes change), restored where a device flag says so.

    Each group of buffers of one device and dtype is kept as one flat tensor: taking the copy is
    one concatenation, restoring one concatenation, one `where` and one `_foreach_copy_`,
    whatever the number of buffers. `where` (rather than arithmetic blending) keeps the saved
    values exact even when the current ones are NaN or inf. The copy is written into the same
    tensors every time, so a captured CUDA graph that restores from it reads each new copy.
    """

    def __init__(self, buffers: Iterable[torch.Tensor]) -> None:
        groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
        for buffer in buffers:
            groups.setdefault((buffer.device, buffer.dtype), []).append(buffer)
        self.groups = list(groups.values())
        self.saved: list[torch.Tensor] = []

    def take(self) -> None:
        """Copy the buffers' current values."""
        if not self.saved:
            self.saved = [_flat(group) for group in self.groups]
            return
        for group, saved in zip(self.groups, self.saved, strict=True):
            torch.cat([t.reshape(-1) for t in group], out=saved)

    def restore_where(self, restore: torch.Tensor) -> None:
        """Put back the copied values if the 0-dim boolean `restore` is True, else keep the
        current ones."""
        if len(self.saved) != len(self.groups):
            return  # nothing taken yet (a step outside the training loop)
        for group, saved in zip(self.groups, self.saved, strict=True):
            chosen = torch.where(restore, saved, _flat(group))
            parts = chosen.split([buffer.numel() for buffer in group])
            torch._foreach_copy_(group, [p.view_as(b) for p, b in zip(parts, group, strict=True)])


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    """One tensor holding the values of `tensors` one after the other."""
    return torch.cat([t.reshape(-1) for t in tensors])
