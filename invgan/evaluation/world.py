"""The processes an evaluation is spread over: which work is this rank's, and how to combine.

One process is the default. Under `trainer=ddp` / `trainer=ddp_sim` every rank takes every
`size`-th batch of a fixed batch plan and the per-rank sums are added up, so the numbers equal a
one-process run up to float64 round-off (tested).
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch
from torch import Tensor

Item = TypeVar("Item")


class EvaluationWorld:
    """Rank, world size and collectives; without a Fabric it is the single-process world."""

    def __init__(self, fabric: Any = None) -> None:
        self.fabric = fabric
        self.rank = 0 if fabric is None else int(fabric.global_rank)
        self.size = 1 if fabric is None else int(fabric.world_size)

    @property
    def is_main(self) -> bool:
        """Rank zero writes files and times inversion."""
        return self.rank == 0

    def share(self, items: list[Item]) -> list[Item]:
        """This rank's items of a plan every rank builds identically: every size-th one."""
        return items[self.rank :: self.size]

    def sum(self, tensor: Tensor) -> Tensor:
        """Element-wise sum of `tensor` over the ranks (float64 sums stay exact to round-off)."""
        if self.size == 1:
            return tensor
        # NCCL reduces device tensors only; gloo either.
        summed = self.fabric.all_reduce(tensor.to(self.fabric.device), reduce_op="sum")
        return summed.to(tensor.device, tensor.dtype)

    def gather_rows(self, rows: Tensor, positions: Tensor) -> Tensor:
        """Every rank's rows (N_r, D), put back in the order of their global `positions`."""
        if self.size == 1:
            return rows[positions.argsort()]
        device = rows.device
        rows, positions = rows.to(self.fabric.device), positions.to(self.fabric.device)
        counts = self.fabric.all_gather(torch.tensor(rows.shape[0], device=rows.device))
        longest = int(counts.max())
        padded = rows.new_zeros(longest, *rows.shape[1:])
        padded[: rows.shape[0]] = rows
        padded_positions = positions.new_full((longest,), -1)
        padded_positions[: rows.shape[0]] = positions
        all_rows = self.fabric.all_gather(padded)
        all_positions = self.fabric.all_gather(padded_positions)
        keep = [slice(0, int(count)) for count in counts]
        rows = torch.cat([all_rows[r, keep[r]] for r in range(self.size)])
        positions = torch.cat([all_positions[r, keep[r]] for r in range(self.size)])
        return rows[positions.argsort()].to(device)
