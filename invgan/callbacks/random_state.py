"""The random generators' states in every checkpoint, restored on resume.

Without them a resumed run reshuffles the data and draws other latents than the run it
continues would have: N/2 steps + resume + N/2 steps would not equal N steps.
"""

from __future__ import annotations

import random
from typing import Any, cast

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist


class RandomStateCallback(pl.Callback):
    """Saves torch (CPU and CUDA), NumPy and Python generator states with each checkpoint
    (as tensors and numbers, which `torch.load(weights_only=True)` reads) and restores them.

    Under DDP every rank starts from the same seed, so each rank then moves to its own stream:
    otherwise all ranks would draw the same prior latents and the global batch would hold each
    z once per rank. Checkpoints of a DDP run hold every rank's states (`ranks`), and a run
    resumed on as many processes gives each rank its own back, so it continues exactly. On
    another number of processes, rank zero's states are restored everywhere and the ranks
    branch off again.
    """

    def __init__(self) -> None:
        self._trainer: pl.Trainer | None = None
        self._restored_per_rank = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Keep the trainer: saving gathers the states of every rank."""
        self._trainer = trainer

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Give each rank its own random stream, derived from the shared state, unless each
        rank's own states were just restored."""
        if trainer.world_size == 1 or self._restored_per_rank:
            return
        base = int(torch.randint(2**31, ()))  # the same on every rank: their states are equal
        seed = base + trainer.global_rank
        torch.manual_seed(seed)  # CPU and every CUDA device
        np.random.seed(seed)
        random.seed(seed)

    def state_dict(self) -> dict[str, Any]:
        """This process's states at the moment the checkpoint is written and, under DDP, every
        rank's (a collective: all ranks build the checkpoint)."""
        own = _current_states()
        trainer = self._trainer
        if trainer is None or trainer.world_size == 1 or not dist.is_initialized():
            return own
        ranks: list[dict[str, Any] | None] = [None] * trainer.world_size
        dist.all_gather_object(ranks, own)
        return {**own, "ranks": ranks}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Put the saved states back (before the resumed training draws anything): this
        rank's own when the checkpoint has one per rank of this run's processes."""
        ranks: list[dict[str, Any]] = state_dict.get("ranks") or []
        world = dist.get_world_size() if dist.is_initialized() else 1
        self._restored_per_rank = len(ranks) == world
        _restore_states(ranks[dist.get_rank()] if self._restored_per_rank else state_dict)


def _current_states() -> dict[str, Any]:
    """The torch, CUDA, NumPy and Python generator states of this process."""
    # The legacy form (the default) is this tuple for the global MT19937 generator; NumPy's
    # stubs type the no-argument call as the dict form.
    legacy = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    _, keys, position, has_gauss, cached_gauss = legacy
    version, python_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gauss": float(cached_gauss),
        },
        "python": {"version": version, "state": list(python_state), "gauss": gauss_next},
    }


def _restore_states(state_dict: dict[str, Any]) -> None:
    """Set this process's generators to the states `_current_states` returned."""
    torch.set_rng_state(state_dict["torch"])
    if state_dict["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state_dict["cuda"])
    numpy_state = state_dict["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gauss"],
        )
    )
    python_state = state_dict["python"]
    random.setstate((python_state["version"], tuple(python_state["state"]), python_state["gauss"]))
