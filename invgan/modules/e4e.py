"""e4e (Tov et al., "Designing an Encoder for StyleGAN Image Manipulation", SIGGRAPH 2021): an
encoder into a frozen StyleGAN's W+ that keeps its codes close to W, for editing.

The encoder (`E4EEncoder`, `model.encoder.architecture=e4e`) predicts one base code w0 and an
offset per later layer: codes[:, i] = w0 + delta_i. pSp's losses (`PSPModule.losses`) tie the
codes to the image; e4e adds two terms that keep them editable:

1. Progressive offsets. Training starts with w0 alone in every layer; offset 1 joins at
   iteration `progressive_start` and one more every `progressive_interval` iterations, up to
   all n_latent - 1 (`active_offsets`). Inactive layers decode w0 at every stage, in training
   and inference alike, so a run's checkpoint inverts as it was trained.
2. Delta regularisation: `delta_weight` * sum_i mean_batch ||delta_i||_2 over the offsets
   active before the newest one (`delta_regularization`; the newest joins the sum one stage
   later, as in e4e's code). With `progressive_start` null every offset is active from the
   start and, as in e4e's code, the regulariser is off.
3. A latent discriminator D on single codes w (`LatentDiscriminator`), trained alongside:
   real codes are M(z) of the frozen mapping network, fake ones the encoder's base code w0;
   non-saturating loss and a lazy R1 penalty on the real codes every `r1_interval`
   iterations. The encoder's term, weighted by `w_discriminator_weight`, is softplus(-D(w_i))
   averaged over the base code and the active layers.
4. Pools of past codes (`w_pool_size`, e4e's `--use_w_pool --w_pool_size 50`): D's real and
   fake inputs each pass through a `LatentPool`, and with the pool on each image offers D one
   of its active layers' codes at random (e4e's pool does the same), without it the base
   code w0. The pools are kept in checkpoints, so a resumed run draws what it would have.

Each iteration backpropagates E's loss (D toggled off), then D's, then vets both and steps
both optimizers, as the in-domain recipe does; E's adversarial gradient therefore comes from D
before this iteration's update (e4e's code updates D first).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from invgan.checkpoints.keys import E4E_W_POOLS_KEY
from invgan.losses.adversarial import discriminator_loss, generator_loss, r1_penalty
from invgan.modules.e4e_loss_config import E4ELossConfig
from invgan.modules.latent_pool import LatentPool
from invgan.modules.optimizer_factory import OptimizerFactory
from invgan.modules.psp import PSPModule
from invgan.nn.encoders.e4e import E4EEncoder
from invgan.nn.frozen_generator import FrozenGenerator
from invgan.utils.config_checks import ConfigValueError

# The defaults of e4e's own options: E4ELossConfig's.
DEFAULTS = E4ELossConfig()


def active_offsets(iteration: int, start: int | None, interval: int, n_latent: int) -> int:
    """How many offsets (layers 1..k) the encoder uses at `iteration`: none before `start`,
    then one more every `interval` iterations up to n_latent - 1; all of them with `start`
    null (e4e's `progressive_steps` = [0, start, start + interval, ...])."""
    if start is None:
        return n_latent - 1
    if iteration < start:
        return 0
    return min(n_latent - 1, 1 + (iteration - start) // interval)


def delta_regularization(codes: torch.Tensor, offsets: int) -> torch.Tensor:
    """sum over i in 1..offsets-1 of the batch mean of ||codes[:, i] - codes[:, 0]||_2: e4e's
    regulariser of the active offsets but the newest (zero when fewer than two are active)."""
    deltas = codes[:, 1:offsets] - codes[:, :1]
    return deltas.norm(dim=2).mean(dim=0).sum()


class E4EModule(PSPModule):
    """e4e training of an `E4EEncoder` against the frozen `generator` (see the module docstring).

    `discriminator` is a partial that receives the generator's `w_dim`; `optimizer_d` trains
    it (e4e: Adam at 2e-5). `psp_options` are `PSPModule`'s (loss weights and networks,
    `learn_in_w`, `start_from_latent_avg`, `encoder_resolution`, `nonfinite`).
    """

    loss_config: E4ELossConfig  # replaces the pSp-only config in `__init__`

    def __init__(
        self,
        generator: FrozenGenerator,
        encoder: Callable[..., nn.Module],
        optimizer: OptimizerFactory,
        discriminator: Callable[..., nn.Module],
        optimizer_d: OptimizerFactory,
        delta_weight: float = DEFAULTS.delta_weight,
        w_discriminator_weight: float = DEFAULTS.w_discriminator_weight,
        r1_gamma: float = DEFAULTS.r1_gamma,
        r1_interval: int = DEFAULTS.r1_interval,
        progressive_start: int | None = DEFAULTS.progressive_start,
        progressive_interval: int = DEFAULTS.progressive_interval,
        w_pool_size: int = DEFAULTS.w_pool_size,
        **psp_options: Any,
    ) -> None:
        # The recipe's losses, refused before any network is built: pSp's weights (among
        # `psp_options`) and e4e's terms. It replaces the pSp-only config PSPModule keeps.
        loss = E4ELossConfig(
            **E4ELossConfig.options(psp_options),
            delta_weight=delta_weight,
            w_discriminator_weight=w_discriminator_weight,
            r1_gamma=r1_gamma,
            r1_interval=r1_interval,
            progressive_start=progressive_start,
            progressive_interval=progressive_interval,
            w_pool_size=w_pool_size,
        )
        super().__init__(generator, encoder, optimizer, **psp_options)
        if not isinstance(self.encoder, E4EEncoder):
            raise ConfigValueError(
                f"e4e trains a base code plus per-layer offsets, but model.encoder built a "
                f"{type(self.encoder).__name__}; set model.encoder.architecture=e4e (and "
                "model.learn_in_w=false), or give an e4e checkpoint as model.encoder.path"
            )
        self.automatic_optimization = False
        self.discriminator = discriminator(w_dim=generator.w_dim)
        self.optimizer_d = optimizer_d
        self.loss_config = loss
        self.w_pools = {
            name: LatentPool(w_pool_size, generator.w_dim) for name in ("real", "fake")
        }

    # ---------------------------------------------------------------- codes
    def active_offsets(self) -> int:
        """The offsets in use at the current iteration (decided on the host)."""
        return active_offsets(
            self.host_iteration,
            self.loss_config.progressive_start,
            self.loss_config.progressive_interval,
            self.generator.n_latent,
        )

    def codes_from_encoder(self, images: torch.Tensor) -> torch.Tensor:
        """pSp's codes with the layers past the active offsets set to the base code w0."""
        codes = super().codes_from_encoder(images)
        used = self.active_offsets() + 1
        if used == codes.shape[1]:
            return codes
        base = codes[:, :1].expand(-1, codes.shape[1] - used, -1)
        return torch.cat([codes[:, :used], base], dim=1)

    # ---------------------------------------------------------------- training
    def encoder_losses(
        self, real: torch.Tensor, fake: torch.Tensor, codes: torch.Tensor, offsets: int
    ) -> dict[str, torch.Tensor]:
        """pSp's terms, plus e4e's delta regulariser and the encoder's adversarial term on the
        base code and the active layers, where their weights are positive."""
        losses = self.losses(real, fake, codes)
        if self.loss_config.delta_weight > 0 and self.loss_config.progressive_start is not None:
            losses["delta"] = delta_regularization(codes, offsets)
        if self.loss_config.w_discriminator_weight > 0:
            judged = codes[:, : offsets + 1].reshape(-1, codes.shape[-1])
            losses["w_adv"] = generator_loss(self.discriminator(judged))
        return losses

    def term_weights(self) -> dict[str, float]:
        """pSp's weights, plus the delta regulariser's and the latent adversarial term's."""
        return {
            **self.loss_weights,
            "delta": self.loss_config.delta_weight,
            "w_adv": self.loss_config.w_discriminator_weight,
        }

    def fake_codes(self, codes: torch.Tensor, offsets: int) -> torch.Tensor:
        """One code per image for D: with the pools on, one of the active layers' (0..offsets)
        at random, as e4e's pool picks; without, the base code w0."""
        codes = codes.detach()
        if self.loss_config.w_pool_size == 0:
            return codes[:, 0]
        rows = torch.arange(codes.shape[0], device=codes.device)
        layers = torch.randint(offsets + 1, (codes.shape[0],), device=codes.device)
        return codes[rows, layers]

    def discriminator_losses(
        self, fake_w: torch.Tensor, apply_r1: bool
    ) -> dict[str, torch.Tensor]:
        """D's non-saturating loss of M(z) against the encoder's codes `fake_w` (both through
        the pools), and with `apply_r1` the R1 penalty on the real codes."""
        with torch.no_grad():
            z = torch.randn(fake_w.shape[0], self.generator.z_dim, device=fake_w.device)
            real_w = self.w_pools["real"].query(self.generator.map(z))
        fake_w = self.w_pools["fake"].query(fake_w)
        real_w.requires_grad_(apply_r1)
        real_logits = self.discriminator(real_w)
        losses = {"d_adv": discriminator_loss(real_logits, self.discriminator(fake_w))}
        if apply_r1:
            losses["r1"] = r1_penalty(real_logits, real_w)
        return losses

    def training_step(self, batch: Any, batch_idx: int) -> None:
        """One encoder and one discriminator backward pass, then both steps (module docstring)."""
        opt_e, opt_d = self.iteration_optimizers(batch_idx)
        real = self.real_images(batch)
        offsets = self.active_offsets()

        self.toggle_optimizer(opt_e)
        codes = self.codes_from_encoder(real)
        fake = self.decode(codes)
        losses = self.encoder_losses(real, fake, codes, offsets)
        loss_e = self.weighted_total(losses)
        self.manual_backward(loss_e)
        self.untoggle_optimizer(opt_e)

        cfg = self.loss_config
        if cfg.w_discriminator_weight > 0:
            self.toggle_optimizer(opt_d)
            apply_r1 = cfg.r1_gamma > 0 and self.host_iteration % cfg.r1_interval == 0
            d_losses = self.discriminator_losses(self.fake_codes(codes, offsets), apply_r1)
            loss_d = d_losses["d_adv"]
            if apply_r1:
                # Lazy regularisation: scaled by the interval so that its average weight is
                # gamma/2, as in e4e's code.
                loss_d = loss_d + 0.5 * cfg.r1_gamma * cfg.r1_interval * d_losses["r1"]
            self.manual_backward(loss_d)
            self.untoggle_optimizer(opt_d)
            losses.update(d_losses)
        if self.ends_iteration(batch_idx):
            parameters = {
                "encoder": self.encoder.parameters(),
                "discriminator": self.discriminator.parameters(),
            }
            self.vet_iteration(losses, parameters, [opt_e, opt_d])
            self.step_optimizers([opt_e, opt_d])

        if self.logs_this_step(batch_idx):
            logs = {f"train/loss_{name}": value for name, value in losses.items()}
            logs["train/loss"] = loss_e
            logs["train/mae"] = (real - fake).abs().mean()
            logs["train/active_offsets"] = torch.tensor(float(offsets))
            self.log_training_values(logs, real.shape[0], {"mae": "train/mae"})

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the pools of past codes (exact resume)."""
        super().on_save_checkpoint(checkpoint)
        checkpoint[E4E_W_POOLS_KEY] = {name: pool.state() for name, pool in self.w_pools.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refill the pools a resumed run saved (a checkpoint without them starts empty)."""
        super().on_load_checkpoint(checkpoint)
        for name, state in checkpoint.get(E4E_W_POOLS_KEY, {}).items():
            self.w_pools[name].restore(state)

    def trained_networks(self) -> list[nn.Module]:
        """The encoder and the latent discriminator."""
        return [self.encoder, self.discriminator]

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Nothing: `training_step` vets the iteration before it steps (pSp vets here)."""

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """One optimizer for the encoder, one for the latent discriminator."""
        return [
            self.optimizer(params=self.encoder.parameters()),
            self.optimizer_d(params=self.discriminator.parameters()),
        ]
