"""InvGAN: a GAN whose discriminator also infers the latent code of an image.

Follows the InvGAN paper (Section 3, Eq. 3): z ~ N(0, I), w = M(z), x = G(w); D(x) returns a
real/fake logit and an inferred code w~. The latent batch fed to G is the batch concatenation
of prior codes M(z) and codes w_R = D(x_real) inferred from real images.

Each iteration runs two phases:

1. Generator phase. G and M minimise the adversarial loss; G, M and D minimise the
   reconstruction terms of Eq. 3 (latent reconstruction on the prior half, cycle consistency on
   the real half, feature matching and optional pixel loss between real images and their
   reconstructions G(D(x)), MMD between prior and inferred codes). D enters these terms as the
   encoder of the real images only: when D judges or re-encodes generated images it runs with
   detached weights, so D's gradient comes through w_R alone ("gradients from the generator
   flow into the discriminator", Section 3.2) and D never learns to help G fool it.
2. Discriminator phase. D maximises the GAN objective (minimises its loss), learns to invert G
   on the generated batch (latent reconstruction, both halves), and optionally pays a lazy R1
   penalty. Its gradients add to those from phase 1 and D takes one optimiser step: the paper's
   "+" between two optimisation processes means they run simultaneously.

G and D step after both phases, once their loss terms and gradients are found finite; a
non-finite iteration stops the run or is skipped (`model.nonfinite`, see `NonFiniteGuardModule`),
decided on the device: no training iteration reads a device value on the host except on
logging steps.

The mapping network is either a module of its own (`model.mapping`, DCGAN and BigGAN) or owned
by the generator (`model.mapping: null`, StyleGAN2, whose mapping is part of its state dict so
that official checkpoints load). Either way `self.mapping` is M and its parameters are trained,
averaged and saved once. Generators that take one code per layer (W+, attribute `n_latent`) can
use style mixing on the prior half of the batch; inferred codes of real images always drive
every layer, and mixed samples, which have no single code to recover, are left out of the
latent reconstruction terms.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, SupportsInt, cast

import torch
from torch import nn
from torch.func import functional_call
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from invgan.losses.adversarial import discriminator_loss, generator_loss, r1_penalty
from invgan.losses.mmd import mmd_unbiased
from invgan.losses.reconstruction import (
    feature_matching_distance,
    latent_distance,
    pixel_distance,
)
from invgan.modules.captured_iteration import CapturedIteration, CaptureError
from invgan.modules.invgan_loss_config import InvGANLossConfig
from invgan.modules.nonfinite import NonFiniteGuardModule
from invgan.modules.optimizer_factory import OptimizerFactory
from invgan.nn.discriminator_output import DiscriminatorOutput
from invgan.nn.frozen_generator import FrozenGenerator
from invgan.nn.style_mixing import style_mixing
from invgan.nn.stylegan2.modulated_conv import held_layout_converters
from invgan.utils.ema import eval_mode, frozen_copy, update_ema
from invgan.utils.images import batch_images, to_signed_range

if TYPE_CHECKING:
    from pytorch_lightning.core.optimizer import LightningOptimizer

NETWORK_SETS = ("live", "ema")
RECONSTRUCTION_UPDATES = ("latent_head", "discriminator")


def _check_network_set(name: str, key: str) -> None:
    if name not in NETWORK_SETS:
        raise ValueError(f"model.{key}={name!r}; allowed: {NETWORK_SETS}")


class LatentHead(Protocol):
    """What the recipe calls on D beyond `nn.Module` (the DCGAN, BigGAN and StyleGAN2
    discriminators offer it). torch types a module's other attributes as `Tensor | Module`,
    so D is cast to this where they are called."""

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Inferred codes (N, w_dim) of images in [-1, 1]."""
        ...

    def latents_from_features(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The latent head applied to trunk features from D's forward pass."""
        ...


class InvGANModule(NonFiniteGuardModule):
    """Joint training of mapping M, generator G and discriminator-with-latent-head D.

    `mapping=None` means the generator owns M and exposes it as `generator.mapping`.
    """

    # Registered in `__init__` by name (with `mapping` unless the generator owns it).
    generator: nn.Module
    discriminator: nn.Module

    def __init__(
        self,
        mapping: nn.Module | None,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: InvGANLossConfig,
        optimizer_g: OptimizerFactory,
        optimizer_d: OptimizerFactory,
        scheduler_g: Callable[[torch.optim.Optimizer], Any] | None = None,
        scheduler_d: Callable[[torch.optim.Optimizer], Any] | None = None,
        ema_decay: float = 0.999,
        inversion_networks: str = "live",
        sampling_networks: str = "ema",
        reconstruction_updates: str = "discriminator",
        style_mixing_prob: float = 0.0,
        nonfinite: str = "stop",
    ) -> None:
        super().__init__(nonfinite)
        self.automatic_optimization = False
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"model.ema_decay must be in [0, 1), got {ema_decay}")
        _check_network_set(inversion_networks, "inversion_networks")
        _check_network_set(sampling_networks, "sampling_networks")
        if reconstruction_updates not in RECONSTRUCTION_UPDATES:
            raise ValueError(
                f"model.reconstruction_updates={reconstruction_updates!r}; "
                f"allowed: {RECONSTRUCTION_UPDATES}"
            )
        self.generator_owns_mapping = mapping is None
        if mapping is None:
            if not isinstance(getattr(generator, "mapping", None), nn.Module):
                raise ValueError(
                    "model.mapping is null but the generator has no mapping network of its "
                    "own; configure model.mapping"
                )
            mapping = cast(nn.Module, generator.mapping)  # checked just above
        if mapping.w_dim != generator.w_dim or mapping.w_dim != discriminator.w_dim:
            raise ValueError(
                f"latent sizes differ: mapping w_dim={mapping.w_dim}, generator "
                f"w_dim={generator.w_dim}, discriminator w_dim={discriminator.w_dim}"
            )
        if not 0.0 <= style_mixing_prob <= 1.0:
            raise ValueError(f"model.style_mixing_prob must be in [0, 1], got {style_mixing_prob}")
        if style_mixing_prob > 0 and getattr(generator, "n_latent", 0) < 2:
            raise ValueError(
                "model.style_mixing_prob > 0 needs a generator that takes one code per layer "
                "(W+, attribute n_latent >= 2), such as StyleGAN2; set it to 0"
            )
        # Each trained network is registered (and saved) once under its own name; an owned
        # mapping lives inside the generator. setattr registers through nn.Module even for
        # `mapping`, whose property only reads.
        trained = {"mapping": mapping, "generator": generator, "discriminator": discriminator}
        if self.generator_owns_mapping:
            del trained["mapping"]
        for name, network in trained.items():
            setattr(self, name, network)
        self.ema = nn.ModuleDict({name: frozen_copy(net) for name, net in trained.items()})
        self.loss_config = loss
        self.optimizer_g = optimizer_g
        self.optimizer_d = optimizer_d
        self.scheduler_g = scheduler_g
        self.scheduler_d = scheduler_d
        self.ema_decay = ema_decay
        self.inversion_networks = inversion_networks
        self.sampling_networks = sampling_networks
        self.reconstruction_updates = reconstruction_updates
        self.style_mixing_prob = style_mixing_prob
        self.capture: CapturedIteration | None = None  # set by `enable_capture`
        self._ema_decay_now: torch.Tensor | None = None

    # ---------------------------------------------------------------- inference API
    def networks(self, which: str) -> tuple[nn.Module, nn.Module, nn.Module]:
        """(mapping, generator, discriminator) of the live or the EMA set."""
        _check_network_set(which, "networks")
        # Looked up by registered name: `self.mapping` is the property below.
        # `_modules` allows None entries; these names are registered in `__init__`.
        nets = self.ema if which == "ema" else cast(dict[str, nn.Module], self._modules)
        generator = nets["generator"]
        mapping = generator.mapping if self.generator_owns_mapping else nets["mapping"]
        return cast(nn.Module, mapping), generator, nets["discriminator"]

    @property
    def mapping(self) -> nn.Module:
        """The live mapping network M, whether standalone or owned by the generator."""
        return self.networks("live")[0]

    def encode(self, images: torch.Tensor, which: str | None = None) -> torch.Tensor:
        """Infer latent codes of images in [-1, 1] with D's latent head (model-based inversion)."""
        _, _, discriminator = self.networks(which or self.inversion_networks)
        with eval_mode(discriminator):
            return cast(LatentHead, discriminator).encode(images)

    def decode(self, latents: torch.Tensor, which: str | None = None) -> torch.Tensor:
        """Generate images in [-1, 1] from latent codes w."""
        _, generator, _ = self.networks(which or self.inversion_networks)
        with eval_mode(generator):
            return generator(latents)

    def reconstruct(self, images: torch.Tensor, which: str | None = None) -> torch.Tensor:
        """G(D(x)) with a generator and latent head of the same set (both live or both EMA)."""
        which = which or self.inversion_networks
        return self.decode(self.encode(images, which), which)

    def sample_latents(
        self, count: int, which: str | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Prior latent codes w = M(z), z ~ N(0, I)."""
        mapping, _, _ = self.networks(which or self.sampling_networks)
        z = torch.randn(count, cast(int, mapping.z_dim), generator=generator, device=self.device)
        with eval_mode(mapping):
            return mapping(z)

    @property
    def z_dim(self) -> int:
        """Size of the prior samples z."""
        return int(cast(SupportsInt, self.mapping.z_dim))

    def generate(self, z: torch.Tensor, which: str | None = None) -> torch.Tensor:
        """Images G(M(z)) in [-1, 1] for given prior samples z (N, z_dim)."""
        which = which or self.sampling_networks
        mapping, _, _ = self.networks(which)
        with eval_mode(mapping):
            return self.decode(mapping(z), which)

    def frozen_generator(self, which: str | None = None) -> FrozenGenerator:
        """A frozen copy of M and G (inversion set by default) with its average latent, for
        optimisation-based and hybrid inversion."""
        mapping, generator, _ = self.networks(which or self.inversion_networks)
        frozen = FrozenGenerator(
            copy.deepcopy(generator),
            None if self.generator_owns_mapping else copy.deepcopy(mapping),
        ).to(self.device)
        frozen.estimate_latent_avg()
        return frozen

    def sample(
        self, count: int, which: str | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Random images G(M(z)) in [-1, 1]."""
        which = which or self.sampling_networks
        return self.decode(self.sample_latents(count, which, generator), which)

    # ---------------------------------------------------------------- training
    def configure_optimizers(self) -> Any:
        """Adam (or any partial from config) for G+M and for D, with optional schedulers."""
        opt_g = self.optimizer_g(params=self._generator_side_parameters())
        opt_d = self.optimizer_d(params=self.discriminator.parameters())
        schedulers = [
            {"scheduler": make(opt), "interval": "epoch"}
            for make, opt in ((self.scheduler_g, opt_g), (self.scheduler_d, opt_d))
            if make is not None
        ]
        for entry in schedulers:
            scheduler = entry["scheduler"]
            if isinstance(scheduler, ReduceLROnPlateau) or not isinstance(scheduler, LRScheduler):
                # A plateau schedule steps on a monitored value, which the epoch hook below
                # does not have.
                raise ValueError(
                    f"model.scheduler_g/scheduler_d built {type(scheduler).__name__}, "
                    "which is not a torch.optim.lr_scheduler.LRScheduler stepped once per epoch; "
                    "use an epoch schedule such as StepLR, ExponentialLR or CosineAnnealingLR"
                )
        return [opt_g, opt_d], schedulers

    def _generator_side_parameters(self) -> list[nn.Parameter]:
        """Parameters of M and G, each once (an owned mapping is among G's)."""
        mapping = [] if self.generator_owns_mapping else list(self.mapping.parameters())
        return [*mapping, *self.generator.parameters()]

    def _generator_codes(
        self, w_prior: torch.Tensor, w_real: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """G's input batch (prior codes, then inferred codes) and which prior samples are unmixed.

        Without style mixing this is the batch concatenation w + w_R of the paper and the mask
        is None. With it, the batch is W+: prior samples may switch to a second prior code at
        a random layer, and each inferred code w_R is repeated in every layer.
        """
        if self.style_mixing_prob == 0:
            return torch.cat([w_prior, w_real]), None
        num_layers = cast(int, self.generator.n_latent)
        w_other = self.mapping(
            torch.randn(w_prior.shape[0], cast(int, self.mapping.z_dim), device=w_prior.device)
        )
        prior_codes, mixed = style_mixing(w_prior, w_other, num_layers, self.style_mixing_prob)
        real_codes = w_real.unsqueeze(1).expand(-1, num_layers, -1)
        return torch.cat([prior_codes, real_codes]), ~mixed

    def _real_images(self, batch: Any) -> torch.Tensor:
        return to_signed_range(batch_images(batch))

    def _judge_frozen(self, images: torch.Tensor) -> DiscriminatorOutput:
        """D applied with detached weights: gradients reach the input only."""
        params = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        return functional_call(self.discriminator, params, (images,))

    def _global_batch(self, codes: torch.Tensor) -> torch.Tensor:
        """The codes of every DDP process, gradients kept: MMD compares distributions, so it is
        estimated on the global batch, not averaged over per-process estimates. Each process
        computes the same loss; the gather's backward sums their gradients into each
        process's own codes, and `vet_iteration` averages gradients over the processes, which
        gives exactly the global loss's gradient."""
        if self._trainer is None or self.trainer.world_size == 1:
            return codes  # one process (outside a Trainer: plain loops, benchmarks)
        # Lightning types the gather of any collection; a tensor's gather is a tensor.
        gathered = cast(torch.Tensor, self.all_gather(codes, sync_grads=True))
        return gathered.flatten(0, 1)

    def trained_networks(self) -> list[nn.Module]:
        """M (unless the generator owns it), G and D."""
        networks = [self.generator, self.discriminator]
        return networks if self.generator_owns_mapping else [self.mapping, *networks]

    def training_step(self, batch: Any, batch_idx: int) -> None:
        """One generator phase and one discriminator phase (see the module docstring)."""
        # Two optimizers configured: Lightning returns them as a list.
        opt_g, opt_d = cast("list[LightningOptimizer]", self.optimizers())
        real = self._real_images(batch)
        if self.capture is not None:
            losses, reconstruction = self._captured_step(real, [opt_g, opt_d])
        else:
            if self.starts_iteration(batch_idx):
                opt_g.zero_grad(set_to_none=True)
                opt_d.zero_grad(set_to_none=True)
            losses, reconstruction = self.backward_iteration(real, self.manual_backward)
            if self.ends_iteration(batch_idx):
                step_ok = self.vet_iteration(losses, self._parameter_groups(), [opt_g, opt_d])
                self.step_optimizers([opt_g, opt_d])
                self.update_ema_networks(step_ok)
                self.count_iteration()
        if not self.logs_this_step(batch_idx):
            return
        logs = {f"train/loss_{name}": value for name, value in losses.items()}
        logs["train/mae"] = (real - reconstruction).abs().mean()
        bar = {"mae": "train/mae", "g": "train/loss_g_adv", "d": "train/loss_d_adv"}
        self.log_training_values(logs, real.shape[0], bar)

    def _parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The parameter groups `vet_iteration` checks, by the names its messages use."""
        return {
            "generator": self._generator_side_parameters(),
            "discriminator": list(self.discriminator.parameters()),
        }

    def enable_capture(self, capture: CapturedIteration) -> None:
        """Run training iterations through `capture` (`callbacks.capture`), after checking that
        this run's iterations can be recorded as CUDA graphs."""
        trainer = self.trainer
        reasons = []
        if trainer.world_size > 1:
            reasons.append("it runs on several processes (gradients are all-reduced)")
        if self.accumulate_grad_batches > 1:
            reasons.append("it accumulates gradients over several batches")
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            reasons.append("an fp16 GradScaler decides its steps on the host")
        if self.scheduler_g is not None or self.scheduler_d is not None:
            reasons.append("learning-rate schedules would be frozen into the graph")
        if reasons:
            raise CaptureError(
                "callbacks.capture.enabled=true cannot record this run's iterations: "
                f"{'; '.join(reasons)}. Set callbacks.capture.enabled=false"
            )
        self.capture = capture

    def _captured_step(
        self, real: torch.Tensor, optimizers: list[Any]
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """A whole iteration through `self.capture`; Lightning's step counters advance here,
        since a replayed graph runs none of its Python."""
        raw = [optimizer.optimizer for optimizer in optimizers]
        for optimizer in raw:
            if not optimizer.defaults.get("fused"):
                raise CaptureError(
                    "callbacks.capture.enabled=true needs fused optimizers (fused: true in the "
                    f"model's optimizer configs); got {type(optimizer).__name__} unfused"
                )
            for group in optimizer.param_groups:
                group["capturable"] = True
        if self._ema_decay_now is None:
            self._ema_decay_now = torch.zeros((), device=real.device)
        self._ema_decay_now.fill_(self._ema_decay())
        apply_r1 = self._applies_r1()
        assert self.capture is not None  # `training_step` calls this only with a capture
        outputs = self.capture.run(
            apply_r1, lambda images: self._device_iteration(images, raw, apply_r1), real
        )
        for optimizer in optimizers:  # Lightning's step counters (max_steps, global_step)
            optimizer._on_before_step()
            optimizer._on_after_step()
        self._host_iteration = self.host_iteration + 1
        return outputs

    def _device_iteration(
        self, real: torch.Tensor, optimizers: list[torch.optim.Optimizer], apply_r1: bool
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Everything an iteration does on the device: backward passes, the finiteness check,
        the optimizer steps, the EMA update and the iteration counter."""
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        backward = lambda loss, **options: loss.backward(**options)  # noqa: E731
        losses, reconstruction = self.backward_iteration(real, backward, apply_r1)
        step_ok = self.vet_iteration(losses, self._parameter_groups(), optimizers)
        for optimizer in optimizers:
            optimizer.step()
        self.update_ema_networks(step_ok, self._ema_decay_now)
        self.iteration += 1
        return losses, reconstruction

    def _applies_r1(self) -> bool:
        """Whether this iteration pays the lazy R1 penalty."""
        cfg = self.loss_config
        return cfg.r1_gamma > 0 and self.host_iteration % cfg.r1_interval == 0

    def backward_iteration(
        self, real: torch.Tensor, backward: Callable[..., None], apply_r1: bool | None = None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Both phases' losses on real images in [-1, 1], back-propagated with
        `backward(loss, **kwargs)` (Lightning's `manual_backward` in training; a plain loop
        passes `torch.Tensor.backward`). R1 is applied on its lazy schedule unless `apply_r1`
        says. Returns the loss terms and the reconstructions."""
        cfg = self.loss_config
        n = real.shape[0]

        # Generator phase.
        z = torch.randn(n, cast(int, self.mapping.z_dim), device=real.device)
        w_prior = self.mapping(z)
        # Reconstruction gradients reach D through w_R: into the latent head only, or into the
        # whole discriminator (trunk included) with reconstruction_updates=discriminator.
        head_only = self.reconstruction_updates == "latent_head"
        with torch.set_grad_enabled(not head_only):
            encoded = self.discriminator(real)
        w_real = (
            cast(LatentHead, self.discriminator).latents_from_features(encoded.features)
            if head_only
            else encoded.latents
        )
        codes, unmixed = self._generator_codes(w_prior, w_real)
        generated = self.generator(codes)
        judged = self._judge_frozen(generated)
        reconstruction = generated[n:]
        num_fakes = 2 * n if cfg.adversarial_on_reconstructions else n
        losses = {
            "g_adv": generator_loss(judged.logits[:num_fakes], cfg.adversarial),
            "latent": latent_distance(w_prior, judged.latents[:n], unmixed),
            "cycle": latent_distance(w_real, judged.latents[n:]),
            "fm": feature_matching_distance(
                [f.detach() for f in encoded.features],
                [f[n:] for f in judged.features],
                cfg.feature_distance,
            ),
            "pixel": pixel_distance(real, reconstruction, cfg.pixel_distance),
            "mmd": mmd_unbiased(
                self._global_batch(w_prior), self._global_batch(w_real), cfg.mmd_bandwidths
            ),
        }
        joint = (
            cfg.latent_weight * losses["latent"]
            + cfg.cycle_weight * losses["cycle"]
            + cfg.feature_matching_weight * losses["fm"]
            + cfg.pixel_weight * losses["pixel"]
            + cfg.mmd_weight * losses["mmd"]
        )
        generator_params = self._generator_side_parameters()
        backward(
            cfg.adversarial_weight * losses["g_adv"], inputs=generator_params, retain_graph=True
        )
        backward(joint, inputs=[*generator_params, *self.discriminator.parameters()])

        # Discriminator phase; D's gradients from the generator phase are kept and added to. It
        # reads nothing that G's step changes, so both steps wait for one finiteness check.
        if apply_r1 is None:
            apply_r1 = self._applies_r1()
        real_input = real.detach().requires_grad_(apply_r1)
        on_real = self.discriminator(real_input)
        on_generated = self.discriminator(generated.detach())
        losses["d_adv"] = discriminator_loss(
            on_real.logits, on_generated.logits[:num_fakes], cfg.adversarial
        )
        losses["d_latent"] = latent_distance(
            torch.cat([w_prior, w_real]).detach(),
            on_generated.latents,
            None if unmixed is None else torch.cat([unmixed, torch.ones_like(unmixed)]),
        )
        loss_d = cfg.adversarial_weight * losses["d_adv"] + cfg.latent_weight * losses["d_latent"]
        if apply_r1:
            losses["r1"] = r1_penalty(on_real.logits, real_input)
            loss_d = loss_d + 0.5 * cfg.r1_gamma * cfg.r1_interval * losses["r1"]
        backward(loss_d)
        return losses, reconstruction

    def _ema_decay(self) -> float:
        """This iteration's EMA decay: ramped up from 0.1 so that early in training the EMA
        networks follow the live ones instead of averaging in the random initialisation."""
        step = self.host_iteration
        return min(self.ema_decay, (1.0 + step) / (10.0 + step))

    def update_ema_networks(
        self, step_ok: torch.Tensor | None = None, decay: torch.Tensor | None = None
    ) -> None:
        """Move the EMA networks towards the live ones (after each optimizer step); with the
        device flag `step_ok` = 0 (a skipped iteration) they stay where they are. `decay` (a
        device tensor, for captured iterations) replaces the host's schedule."""
        rate = 1.0 - (self._ema_decay() if decay is None else decay)
        if step_ok is not None:
            rate = rate * step_ok
        # One call over all networks: one foreach kernel per dtype instead of one per network.
        live = nn.ModuleDict({name: getattr(self, name) for name in self.ema})
        update_ema(self.ema, live, 1.0 - rate)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Optimizer moments saved while StyleGAN2's modulated-convolution weights were held in
        the official 5-d layout (checkpoints of the first release) take the layout the
        parameters are held in now, so that such a run resumes (weights load through the
        state-dict hooks)."""
        converters = held_layout_converters(self)
        groups = [self._generator_side_parameters(), list(self.discriminator.parameters())]
        for state, parameters in zip(checkpoint.get("optimizer_states", []), groups, strict=False):
            indices = [i for group in state["param_groups"] for i in group["params"]]
            for index, parameter in zip(indices, parameters, strict=False):
                convert = converters.get(id(parameter))
                for name, value in state["state"].get(index, {}).items():
                    if convert is not None and value.shape != parameter.shape:
                        state["state"][index][name] = convert(value).contiguous()

    def on_train_epoch_end(self) -> None:
        """Step epoch-interval schedulers (manual optimisation leaves this to the module)."""
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            # Stepped without a metric: the recipe's schedulers are `LRScheduler`s (a
            # ReduceLROnPlateau would need the monitored value).
            cast(LRScheduler, scheduler).step()

    # ---------------------------------------------------------------- evaluation
    def _log_reconstruction_error(self, batch: Any, stage: str) -> None:
        real = self._real_images(batch)
        logs = {
            f"{stage}/mae_{which}": (real - self.reconstruct(real, which)).abs().mean()
            for which in NETWORK_SETS
        }
        logs[f"{stage}/mae"] = logs[f"{stage}/mae_{self.inversion_networks}"]
        self.log_dict(logs, on_epoch=True, sync_dist=True, batch_size=real.shape[0])

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Reconstruction MAE of held-out images with the live and the EMA networks."""
        self._log_reconstruction_error(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """Reconstruction MAE of test images with the live and the EMA networks."""
        self._log_reconstruction_error(batch, "test")
