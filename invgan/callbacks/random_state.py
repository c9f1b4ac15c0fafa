"""The random generators' states in every checkpoint, restored on resume.

Without them a resumed run reshuffles the data and draws other latents than the run it
continues would have: N/2 steps + resume + N/2 steps would not equal N steps.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch


class RandomStateCallback(pl.Callback):
    """Saves torch (CPU and CUDA), NumPy and Python generator states with each checkpoint
    (as tensors and numbers, which `torch.load(weights_only=True)` reads) and restores them.

    Under DDP every rank starts from the same seed (and a resumed run from rank zero's saved
    states), so each rank then moves to its own stream: otherwise all ranks would draw the same
    prior latents and the global batch would hold each z once per rank.
    """

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Give each rank its own random stream, derived from the shared state."""
        if trainer.world_size == 1:
            return
        base = int(torch.randint(2**31, ()))  # the same on every rank: their states are equal
        seed = base + trainer.global_rank
        torch.manual_seed(seed)  # CPU and every CUDA device
        np.random.seed(seed)
        random.seed(seed)

    def state_dict(self) -> dict[str, Any]:
        """The states at the moment the checkpoint is written."""
        _, keys, position, has_gauss, cached_gauss = np.random.get_state()
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

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Put the saved states back (before the resumed training draws anything)."""
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
        random.setstate(
            (python_state["version"], tuple(python_state["state"]), python_state["gauss"])
        )
