"""In-domain encoder training (Zhu et al., "In-Domain GAN Inversion for Real Image Editing",
ECCV 2020, Section 3.1): a domain-guided encoder E into the W+ space of a frozen generator G.

E is trained on real images only. Its codes must reconstruct the image in pixels and in a
perceptual feature space, and the reconstruction G(E(x)) must look real to a discriminator D
trained alongside, which keeps the codes inside G's semantic domain. Each iteration:

1. Encoder step: pixel_weight * ||x - G(E(x))||^2 + perceptual_weight * LPIPS(x, G(E(x)))
   + adversarial_weight * softplus(-D(G(E(x)))). Gradients reach E through G; G's parameters
   are frozen and D's are toggled off.
2. Discriminator step: real x against G(E(x)) (detached), non-saturating loss, plus a lazy R1
   penalty on real images every `r1_interval` iterations.

Only E and D are trained; the frozen generator is saved with checkpoints but never changes.
LPIPS is a loss, not part of the model: it is built from its config when fitting starts and kept
out of the state dict (as in the pSp module), so checkpoints stay small and evaluating one needs
no LPIPS weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from invgan.losses.adversarial import discriminator_loss, generator_loss, r1_penalty
from invgan.modules.encoder_module import EncoderModule
from invgan.modules.indomain_loss_config import InDomainLossConfig
from invgan.modules.optimizer_factory import OptimizerFactory
from invgan.nn.frozen_generator import FrozenGenerator

# The defaults of the loss weights and R1 schedule: InDomainLossConfig's.
DEFAULTS = InDomainLossConfig()


class InDomainEncoderModule(EncoderModule):
    """Domain-guided encoder E, frozen generator G, and a discriminator D on reconstructions.

    `encoder` is a partial that receives the generator's `resolution`, `channels`, `n_latent`
    and `w_dim`, which are read from the pretrained weights rather than configured.
    `discriminator` returns a `DiscriminatorOutput`; only its `.logits` are used. `perceptual`
    builds the frozen per-image LPIPS distance (a `PerceptualDistance` partial).
    """

    def __init__(
        self,
        generator: FrozenGenerator,
        encoder: Callable[..., nn.Module],
        discriminator: nn.Module,
        perceptual: Callable[[], nn.Module],
        optimizer_e: OptimizerFactory,
        optimizer_d: OptimizerFactory,
        pixel_weight: float = DEFAULTS.pixel_weight,
        perceptual_weight: float = DEFAULTS.perceptual_weight,
        adversarial_weight: float = DEFAULTS.adversarial_weight,
        r1_gamma: float = DEFAULTS.r1_gamma,
        r1_interval: int = DEFAULTS.r1_interval,
        nonfinite: str = "stop",
    ) -> None:
        loss = InDomainLossConfig(
            pixel_weight, perceptual_weight, adversarial_weight, r1_gamma, r1_interval
        )
        super().__init__(
            generator,
            encoder(
                resolution=generator.resolution,
                channels=generator.channels,
                n_latent=generator.n_latent,
                w_dim=generator.w_dim,
            ),
            {"lpips": perceptual},
            nonfinite,
        )
        self.automatic_optimization = False
        self.discriminator = discriminator
        self.optimizer_e = optimizer_e
        self.optimizer_d = optimizer_d
        self.loss_config = loss

    def trained_networks(self) -> list[nn.Module]:
        """The encoder and the discriminator."""
        return [self.encoder, self.discriminator]

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """One optimiser for E and one for D (G has no trainable parameters)."""
        return [
            self.optimizer_e(params=self.encoder.parameters()),
            self.optimizer_d(params=self.discriminator.parameters()),
        ]

    def training_step(self, batch: Any, batch_idx: int) -> None:
        """One encoder step, then one discriminator step (see the module docstring)."""
        opt_e, opt_d = self.iteration_optimizers(batch_idx)
        real = self.real_images(batch)

        self.toggle_optimizer(opt_e)
        reconstruction = self.decode(self.codes_from_encoder(real))
        losses = {
            "pixel": F.mse_loss(reconstruction, real),
            # IDInvert compares VGG16 conv4_3 features; LPIPS-VGG (PerceptualDistance) is the
            # calibrated form of that distance.
            "perceptual": self.loss_network("lpips")(real, reconstruction).mean(),
            "g_adv": generator_loss(self.discriminator(reconstruction).logits),
        }
        cfg = self.loss_config
        loss_e = (
            cfg.pixel_weight * losses["pixel"]
            + cfg.perceptual_weight * losses["perceptual"]
            + cfg.adversarial_weight * losses["g_adv"]
        )
        self.manual_backward(loss_e)
        self.untoggle_optimizer(opt_e)

        # D's phase reads nothing that E's step changes (the reconstruction is detached), so both
        # steps wait for one finiteness check of the iteration (`model.nonfinite`).
        self.toggle_optimizer(opt_d)
        apply_r1 = cfg.r1_gamma > 0 and self.host_iteration % cfg.r1_interval == 0
        real_input = real.detach().requires_grad_(apply_r1)
        real_logits = self.discriminator(real_input).logits
        fake_logits = self.discriminator(reconstruction.detach()).logits
        losses["d_adv"] = discriminator_loss(real_logits, fake_logits)
        loss_d = losses["d_adv"]
        if apply_r1:
            losses["r1"] = r1_penalty(real_logits, real_input)
            # Lazy regularisation: scaled by the interval so that its average weight is gamma/2.
            loss_d = loss_d + 0.5 * cfg.r1_gamma * cfg.r1_interval * losses["r1"]
        self.manual_backward(loss_d)
        self.untoggle_optimizer(opt_d)
        parameters = {
            "encoder": self.encoder.parameters(),
            "discriminator": self.discriminator.parameters(),
        }
        if self.ends_iteration(batch_idx):
            self.vet_iteration(losses, parameters, [opt_e, opt_d])
            self.step_optimizers([opt_e, opt_d])

        if not self.logs_this_step(batch_idx):
            return
        logs = {f"train/loss_{name}": value for name, value in losses.items()}
        logs["train/mae"] = (real - reconstruction).abs().mean()
        self.log_training_values(logs, real.shape[0])
