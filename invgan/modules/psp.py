"""pSp (Richardson et al., "Encoding in Style", CVPR 2021): an encoder trained into a frozen
StyleGAN's W+ space with pixel, perceptual, identity and latent-norm losses.

Only the encoder trains. It predicts offsets from the generator's average latent
(`start_from_latent_avg`, pSp's default for inversion) so that the untrained encoder already
decodes to the average face, and the loss is

    l2_weight * ||x - G(E(x))||^2 + lpips_weight * LPIPS(x, G(E(x)))
    + id_weight * (1 - cos(ArcFace(x), ArcFace(G(E(x))))) + w_norm_weight * ||E(x) - w_avg||_2

with pSp's defaults 1.0, 0.8 and (for faces) 0.1; the latent-norm term is for its
image-to-image tasks and is off for inversion.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from invgan.modules.encoder_module import EncoderModule
from invgan.modules.optimizer_factory import OptimizerFactory
from invgan.modules.psp_loss_config import PSPLossConfig
from invgan.nn.frozen_generator import FrozenGenerator
from invgan.utils.config_checks import ConfigValueError, check_arguments

# The defaults of the weights: PSPLossConfig's.
DEFAULTS = PSPLossConfig()


class PSPModule(EncoderModule):
    """pSp training of `encoder` against the frozen `generator` (automatic optimisation).

    `encoder` is a partial that gets the generator's resolution (or `encoder_resolution`),
    channels, w_dim and n_latent plus `learn_in_w`: W+ codes (N, n_latent, w_dim) by default,
    one w (N, w_dim) with `learn_in_w`. `encoder_resolution` resizes images before encoding
    (pSp encodes 256-px inputs for its 1024-px generator); losses compare full-size images.
    `perceptual` and `identity` build the frozen LPIPS and ArcFace networks and are called
    only when their weights are positive.
    """

    # Images the encoder sees, stacked on the channel axis (ReStyle adds the reconstruction).
    encoder_input_images = 1

    def __init__(
        self,
        generator: FrozenGenerator,
        encoder: Callable[..., nn.Module],
        optimizer: OptimizerFactory,
        perceptual: Callable[[], nn.Module] | None = None,
        identity: Callable[[], nn.Module] | None = None,
        learn_in_w: bool = False,
        start_from_latent_avg: bool = True,
        encoder_resolution: int | None = None,
        l2_weight: float = DEFAULTS.l2_weight,
        lpips_weight: float = DEFAULTS.lpips_weight,
        id_weight: float = DEFAULTS.id_weight,
        w_norm_weight: float = DEFAULTS.w_norm_weight,
        nonfinite: str = "stop",
    ) -> None:
        loss = PSPLossConfig(l2_weight, lpips_weight, id_weight, w_norm_weight)
        check_arguments("model", PSPModule, {"encoder_resolution": encoder_resolution})
        weights = loss.weights()
        factories = {"lpips": perceptual, "id": identity}
        loss_networks: dict[str, Callable[[], nn.Module]] = {}
        for name, factory in factories.items():
            if weights[name] > 0:
                if factory is None:
                    raise ConfigValueError(f"model.{name}_weight > 0 needs its network config")
                loss_networks[name] = factory
        built = encoder(
            resolution=encoder_resolution or generator.resolution,
            channels=generator.channels * self.encoder_input_images,
            w_dim=generator.w_dim,
            n_latent=generator.n_latent,
            learn_in_w=learn_in_w,
        )
        # An encoder loaded from a pSp / e4e checkpoint (model.encoder.path) predicts codes or
        # offsets from the average latent, as it was trained; decoding them the other way fails.
        trained = getattr(built, "start_from_latent_avg", start_from_latent_avg)
        if trained != start_from_latent_avg:
            raise ConfigValueError(
                "model.encoder.path holds an encoder trained with start_from_latent_avg="
                f"{trained}; set model.start_from_latent_avg={str(trained).lower()}"
            )
        super().__init__(generator, built, loss_networks, nonfinite)
        self.optimizer = optimizer
        self.learn_in_w = learn_in_w
        self.start_from_latent_avg = start_from_latent_avg
        self.encoder_resolution = encoder_resolution
        self.loss_config = loss
        self.loss_weights = {name: weight for name, weight in weights.items() if weight > 0}
        self._step_losses: dict[str, torch.Tensor] = {}

    # ---------------------------------------------------------------- codes
    def codes_from_encoder(self, images: torch.Tensor) -> torch.Tensor:
        """E(x), plus the generator's average latent with `start_from_latent_avg`."""
        size = self.encoder_resolution
        if size is not None and images.shape[-1] != size:
            images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True)
        codes = self.encoder(images)
        if self.start_from_latent_avg:
            codes = codes + self.generator.latent_avg
        return codes

    # ---------------------------------------------------------------- losses
    def w_norm(self, codes: torch.Tensor) -> torch.Tensor:
        """||codes - w_avg||_2 per image (without `start_from_latent_avg`, ||codes||_2),
        averaged over the batch. The norm spans all W+ layers at once, as in pSp's code, so its
        paper weights carry over."""
        if self.start_from_latent_avg:
            codes = codes - self.generator.latent_avg
        return codes.flatten(1).norm(dim=1).mean()

    def losses(
        self, real: torch.Tensor, fake: torch.Tensor, codes: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The unweighted loss terms that have a positive weight."""
        terms = {
            "l2": lambda: F.mse_loss(fake, real),
            "lpips": lambda: self.loss_network("lpips")(fake, real).mean(),
            "id": lambda: self.loss_network("id")(real, fake),
            "w_norm": lambda: self.w_norm(codes),
        }
        return {name: terms[name]() for name in self.loss_weights}

    def term_weights(self) -> dict[str, float]:
        """The weight of each loss term `losses` can hold."""
        return self.loss_weights

    def weighted_total(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """The encoder's loss: each term times its weight."""
        weights = self.term_weights()
        # A tensor: `losses` holds pSp's terms, of which PSPLossConfig keeps at least one.
        return cast(torch.Tensor, sum(weights[name] * value for name, value in losses.items()))

    # ---------------------------------------------------------------- training
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        """One encoder update on the weighted sum of pSp's losses, returned for Lightning to
        back-propagate (the manually optimised recipes built on this one return None)."""
        real = self.real_images(batch)
        codes = self.codes_from_encoder(real)
        fake = self.decode(codes)
        losses = self.losses(real, fake, codes)
        total = self.weighted_total(losses)
        self._step_losses = {name: value.detach() for name, value in losses.items()}
        if self.logs_this_step(batch_idx):
            logs = {f"train/loss_{name}": value for name, value in self._step_losses.items()}
            logs["train/loss"] = total
            logs["train/mae"] = (real - fake).abs().mean()
            self.log_training_values(logs, real.shape[0], {"mae": "train/mae"})
        return total

    def trained_networks(self) -> list[nn.Module]:
        """The encoder."""
        return [self.encoder]

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Vet the step's losses and gradients after backward (`model.nonfinite`): a bad step
        arms the optimizer to skip, so it changes nothing."""
        self.vet_iteration(self._step_losses, {"encoder": self.encoder.parameters()}, [optimizer])

    def configure_optimizers(self) -> torch.optim.Optimizer | list[torch.optim.Optimizer]:
        """The configured optimizer over the encoder's parameters only (recipes that also
        train a discriminator add its optimizer to a list)."""
        return self.optimizer(params=self.encoder.parameters())
