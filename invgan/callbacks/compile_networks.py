"""`torch.compile` for the networks a recipe trains."""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
import torch._functorch.config
from torch import nn

from invgan.callbacks.leave_trainer import leave_trainer


class CompileNetworks(pl.Callback):
    """Compile the named sub-networks of the module (e.g. `generator`, `mapping`) in place
    before fitting; an empty list compiles nothing.

    `nn.Module.compile` keeps parameter names, so checkpoints of compiled and eager runs are
    interchangeable. torch.compile's autograd has no double backward, which R1 takes through
    the discriminator: a recipe with R1 on (`r1_gamma` > 0) refuses to compile its
    discriminator, with the remedy in the message. InvGAN's generator phase runs two backward
    passes over one graph (`retain_graph`), which compiled backward functions allow only
    without donated buffers (a memory saving), so those are turned off.
    """

    def __init__(
        self,
        networks: Sequence[str] = (),
        mode: str = "default",
        backend: str = "inductor",
        dynamic: bool | None = None,
    ) -> None:
        self.networks = list(networks)
        self.options = {"mode": mode, "backend": backend, "dynamic": dynamic}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Compile before fitting (evaluation and tests keep eager networks); with no networks
        to compile, leave the trainer."""
        if not self.networks:
            leave_trainer(self, trainer)
            return
        if stage != "fit":
            return
        torch._functorch.config.donated_buffer = False
        for name in self.networks:
            network = getattr(pl_module, name, None)
            if not isinstance(network, nn.Module):
                raise ValueError(
                    f"callbacks.compile.networks names {name!r}, which "
                    f"{type(pl_module).__name__} does not have; its networks: "
                    f"{sorted(n for n, _ in pl_module.named_children())}"
                )
            if name == "discriminator" and _r1_gamma(pl_module) > 0:
                raise ValueError(
                    "the discriminator cannot be compiled while R1 is on: torch.compile has no "
                    "double backward. Leave it out of callbacks.compile.networks, or set the "
                    "recipe's r1_gamma=0"
                )
            network.compile(**self.options)


def _r1_gamma(module: pl.LightningModule) -> float:
    """The recipe's R1 weight (InvGAN keeps it in its loss config), 0 when it has none."""
    return float(getattr(getattr(module, "loss_config", module), "r1_gamma", 0.0))
