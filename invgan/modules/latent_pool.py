"""A history of latent codes for a discriminator's inputs (e4e's `--use_w_pool`, after the
image pool of Shrivastava et al. 2017 that CycleGAN uses): D sees codes from past iterations
too, which damps the encoder and D chasing each other.

Until the pool holds `size` codes, each query stores its codes and returns them. After that,
each code in a query is, with probability 1/2, swapped with a stored one (the stored one is
returned and the new one takes its place), else returned as it is. The swapped slots of one
query are distinct (drawn without replacement), so the result does not depend on write order;
every draw is made on the codes' device, so a query reads nothing back to the host.
"""

from __future__ import annotations

from typing import Any

import torch


class LatentPool:
    """Up to `size` past codes of width `w_dim` (`size` 0: queries return their input)."""

    def __init__(self, size: int, w_dim: int) -> None:
        if size < 0:
            raise ValueError(f"a latent pool's size must be >= 0, got {size}")
        self.size = size
        self.w_dim = w_dim
        self.codes = torch.zeros(size, w_dim)
        self.filled = 0  # on the host: how many slots hold codes

    def query(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (N, w_dim) for the discriminator, drawn from `codes` and the pool."""
        if self.size == 0:
            return codes
        codes = codes.detach()
        self.codes = self.codes.to(device=codes.device, dtype=codes.dtype)
        stored = min(codes.shape[0], self.size - self.filled)
        self.codes[self.filled : self.filled + stored] = codes[:stored]
        self.filled += stored
        answers = [codes[:stored]]
        # The rest in chunks of at most `size`, so that each chunk's slots are distinct.
        for start in range(stored, codes.shape[0], self.size):
            chunk = codes[start : start + self.size]
            slots = torch.randperm(self.size, device=codes.device)[: chunk.shape[0]]
            swap = torch.rand(chunk.shape[0], 1, device=codes.device) < 0.5
            previous = self.codes[slots]
            answers.append(torch.where(swap, previous, chunk))
            self.codes[slots] = torch.where(swap, chunk, previous)
        return torch.cat(answers)

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps: the stored codes, on the CPU."""
        return {"codes": self.codes[: self.filled].cpu().clone()}

    def restore(self, state: dict[str, Any]) -> None:
        """Take `state()`'s output back (a pool of another size or width is refused)."""
        codes = state["codes"]
        if codes.ndim != 2 or codes.shape[0] > self.size or codes.shape[1] != self.w_dim:
            raise ValueError(
                f"the checkpoint's latent pool holds codes of shape {tuple(codes.shape)}; this "
                f"run's pool holds up to {self.size} codes of width {self.w_dim} "
                "(model.w_pool_size changed since the run was saved?)"
            )
        self.codes = torch.zeros(self.size, self.w_dim, dtype=codes.dtype)
        self.codes[: codes.shape[0]] = codes
        self.filled = codes.shape[0]
