"""Shared base of the recipes that train an encoder into a frozen generator's latent space."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from invgan.checkpoints.keys import GENERATOR_ARCHITECTURE_KEY
from invgan.modules.nonfinite import NonFiniteGuardModule
from invgan.nn.frozen_generator import FrozenGenerator
from invgan.utils.ema import eval_mode
from invgan.utils.images import batch_images, to_signed_range


class EncoderModule(NonFiniteGuardModule):
    """A trainable encoder E and a `FrozenGenerator` G: encode(x) = E(x), decode(w) = G(w).

    Subclasses define the training step and, when E's raw output is not the final code (pSp
    adds the average latent), `codes_from_encoder`. Provides the inference API that
    evaluation, image grids and inversion methods use (`encode`, `decode`, `reconstruct`,
    `generate`, `sample`, `frozen_generator`), validation/test MAE, and an `iteration` counter
    saved with checkpoints.
    """

    # Evaluation reports which network set inverts and samples; an encoder run has one set.
    inversion_networks = "live"
    sampling_networks = "live"

    def __init__(
        self,
        generator: FrozenGenerator,
        encoder: nn.Module,
        loss_networks: Mapping[str, Callable[[], nn.Module]] | None = None,
        nonfinite: str = "stop",
    ) -> None:
        super().__init__(nonfinite)
        if not isinstance(generator, FrozenGenerator):
            raise TypeError(
                "model.generator must build a FrozenGenerator, e.g. with _target_: "
                "invgan.checkpoints.generator_import.load_frozen_generator"
            )
        self.generator = generator
        self.encoder = encoder
        # Frozen loss networks (LPIPS, ArcFace) sit in a plain dict, outside the state dict:
        # checkpoints hold the encoder and the generator only, and evaluating or resuming one
        # needs no loss weights until training runs.
        self._loss_factories = dict(loss_networks or {})
        self._loss_networks: dict[str, nn.Module] = {}

    # ---------------------------------------------------------------- inference API
    @property
    def z_dim(self) -> int:
        """Size of the generator's prior samples z."""
        return self.generator.z_dim

    def codes_from_encoder(self, images: torch.Tensor) -> torch.Tensor:
        """Latent codes of images in [-1, 1] from the encoder, in training or eval mode."""
        return self.encoder(images)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Latent codes (w or W+) of images in [-1, 1], encoder in eval mode."""
        with eval_mode(self.encoder):
            return self.codes_from_encoder(images)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from codes through the frozen generator."""
        return self.generator.synthesize(codes)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """G(E(x))."""
        return self.decode(self.encode(images))

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """G(M(z)) for given prior samples z (N, z_dim)."""
        return self.generator.sample(z)

    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`count` random images G(M(z)), z ~ N(0, I)."""
        z = torch.randn(count, self.z_dim, generator=generator, device=self.device)
        return self.generate(z)

    def frozen_generator(self) -> FrozenGenerator:
        """The generator that codes are found for (optimisation-based inversion uses it)."""
        return self.generator

    # ---------------------------------------------------------------- training helpers
    def loss_network(self, name: str) -> nn.Module:
        """The frozen loss network `name`, built on first use, on the module's device."""
        if name not in self._loss_networks:
            self._loss_networks[name] = self._loss_factories[name]()
        return self._loss_networks[name].to(self.device)

    def setup(self, stage: str) -> None:
        """Build the loss networks before fitting, so a missing weights file fails early."""
        if stage == "fit":
            for name in self._loss_factories:
                self.loss_network(name)

    def real_images(self, batch: Any) -> torch.Tensor:
        """A datamodule batch as images in [-1, 1]."""
        return to_signed_range(batch_images(batch))

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Count training iterations (image grids and schedules read `iteration`)."""
        if self.ends_iteration(batch_idx):
            self.count_iteration()
        super().on_train_batch_end(outputs, batch, batch_idx)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record how to rebuild the frozen generator without its source file."""
        super().on_save_checkpoint(checkpoint)
        checkpoint[GENERATOR_ARCHITECTURE_KEY] = self.generator.architecture

    # ---------------------------------------------------------------- evaluation
    def _log_reconstruction_error(self, batch: Any, stage: str) -> None:
        real = self.real_images(batch)
        mae = (real - self.reconstruct(real)).abs().mean()
        self.log(f"{stage}/mae", mae, on_epoch=True, sync_dist=True, batch_size=real.shape[0])

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Reconstruction MAE of held-out images."""
        self._log_reconstruction_error(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """Reconstruction MAE of test images."""
        self._log_reconstruction_error(batch, "test")
