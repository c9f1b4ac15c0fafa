"""ReStyle (Alaluf et al., "ReStyle: A Residual-Based StyleGAN Encoder via Iterative
Refinement", ICCV 2021): a pSp or e4e encoder that refines W+ codes in N steps.

The encoder sees the image x and the current reconstruction y_t stacked on the channel axis
(6 channels for RGB) and predicts a residual in W+:

    w_0 = w_avg,  y_0 = G(w_avg),  w_{t+1} = w_t + E(concat(x, y_t)),  y_{t+1} = G(w_{t+1}),

so the first step is a pSp forward (offsets from the average latent) on the concatenated
input. Training runs `iterations` steps per batch (ReStyle's `n_iters_per_batch`, 5 in the
paper), each with the base encoder's losses (`PSPModule.losses`) on its own reconstruction
and its own backward pass; w_t and y_t enter step t+1 detached, so no gradient flows through
the earlier steps, and one optimizer step follows the last. With `random_iterations` each
batch draws its step count uniformly from 1..iterations instead. `encode` (evaluation's
`inversion=encoder`, validation, image grids) runs `iterations` steps; `inversion=restyle`
chooses the count at evaluation time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from invgan.modules.optimizer_factory import OptimizerFactory
from invgan.modules.psp import PSPModule
from invgan.nn.frozen_generator import FrozenGenerator
from invgan.utils.config_checks import ConfigValueError, check_count
from invgan.utils.ema import eval_mode

# pSp's encoder reads coarse, medium and fine styles from three maps: one head each at least.
MIN_STYLE_INPUTS = 3


def check_iterations(key: str, iterations: Any) -> int:
    """`iterations` as an int >= 1 (ReStyle's refinement steps; the paper uses 5), else
    `ConfigValueError` naming `key`."""
    return check_count(key, iterations)


class RefinementRun(NamedTuple):
    """What one training refinement run back-propagated: each loss term summed over the steps,
    the last step's terms, the weighted loss summed over the steps, and the first and last
    steps' reconstructions (all detached)."""

    sums: dict[str, torch.Tensor]
    last: dict[str, torch.Tensor]
    loss: torch.Tensor
    first_images: torch.Tensor
    last_images: torch.Tensor


class ReStyleModule(PSPModule):
    """ReStyle training of a pSp (`model.encoder.architecture=psp`) or e4e (`e4e`) encoder
    against the frozen `generator`, with pSp's losses (see the module docstring).

    `psp_options` are `PSPModule`'s (loss weights and networks, `encoder_resolution`,
    `nonfinite`); ReStyle predicts W+ residuals from the average latent, so `learn_in_w` must
    stay false and `start_from_latent_avg` true. Optimisation is manual: one backward pass
    per refinement step, one optimizer step per iteration.
    """

    encoder_input_images = 2

    def __init__(
        self,
        generator: FrozenGenerator,
        encoder: Callable[..., nn.Module],
        optimizer: OptimizerFactory,
        iterations: int = 5,
        random_iterations: bool = False,
        **psp_options: Any,
    ) -> None:
        if psp_options.get("learn_in_w", False):
            raise ConfigValueError(
                "model.learn_in_w=true: ReStyle refines W+ codes; set model.learn_in_w=false"
            )
        if not psp_options.get("start_from_latent_avg", True):
            raise ConfigValueError(
                "model.start_from_latent_avg=false: ReStyle's refinement starts from the "
                "average latent; set model.start_from_latent_avg=true"
            )
        if getattr(encoder, "keywords", {}).get("path") is not None:
            raise ConfigValueError(
                "model.encoder.path: a pSp / e4e checkpoint's encoder takes the image alone, "
                "ReStyle's takes the image and the reconstruction (twice the channels); leave "
                "model.encoder.path unset and give the generator as model.generator.path"
            )
        if generator.n_latent < MIN_STYLE_INPUTS:
            raise ConfigValueError(
                f"ReStyle predicts W+ residuals over pSp's three pyramid levels: the generator "
                f"in model.generator.path has {generator.n_latent} style input(s), it needs at "
                f"least {MIN_STYLE_INPUTS}; use a StyleGAN2 generator"
            )
        iterations = check_iterations("model.iterations", iterations)
        super().__init__(generator, encoder, optimizer, **psp_options)
        self.iterations = iterations
        self.random_iterations = bool(random_iterations)
        self.automatic_optimization = False

    # ---------------------------------------------------------------- refinement
    def start_codes(self, count: int) -> torch.Tensor:
        """w_0: the average latent as W+ codes (count, n_latent, w_dim)."""
        latent_avg = self.generator.latent_avg
        return latent_avg.expand(count, self.generator.n_latent, latent_avg.shape[-1])

    def average_images(self, count: int) -> torch.Tensor:
        """y_0 = G(w_avg), repeated `count` times (decoded once)."""
        image = self.decode(self.start_codes(1))
        return image.expand(count, *image.shape[1:])

    def refine(
        self, images: torch.Tensor, codes: torch.Tensor, reconstructions: torch.Tensor
    ) -> torch.Tensor:
        """One step: codes + E(concat(images, reconstructions)), both resized to
        `encoder_resolution` when set."""
        inputs = torch.cat([images, reconstructions], dim=1)
        size = self.encoder_resolution
        if size is not None and inputs.shape[-1] != size:
            inputs = F.interpolate(inputs, size=(size, size), mode="bilinear", antialias=True)
        return codes + self.encoder(inputs)

    def iterative_codes(self, images: torch.Tensor, iterations: int) -> list[torch.Tensor]:
        """w_1 .. w_iterations of images in [-1, 1], encoder in its current mode."""
        check_iterations("iterations", iterations)
        codes = self.start_codes(images.shape[0])
        reconstructions = self.average_images(images.shape[0])
        steps = []
        for step in range(iterations):
            codes = self.refine(images, codes, reconstructions)
            steps.append(codes)
            if step + 1 < iterations:  # the last step's image is the caller's to decode
                reconstructions = self.decode(codes)
        return steps

    def encode_iterations(self, images: torch.Tensor, iterations: int) -> list[torch.Tensor]:
        """W+ codes after each of `iterations` refinement steps, encoder in eval mode."""
        with eval_mode(self.encoder):
            return self.iterative_codes(images, iterations)

    def codes_from_encoder(self, images: torch.Tensor) -> torch.Tensor:
        """w_N after `model.iterations` refinement steps."""
        return self.iterative_codes(images, self.iterations)[-1]

    # ---------------------------------------------------------------- training
    def training_iterations(self) -> int:
        """This batch's refinement steps: `iterations`, or 1..iterations drawn uniformly (on the
        host, from torch's seeded CPU generator) with `random_iterations`."""
        if not self.random_iterations:
            return self.iterations
        return int(torch.randint(1, self.iterations + 1, ()))

    def backward_refinement(
        self, real: torch.Tensor, steps: int, backward: Callable[[torch.Tensor], None]
    ) -> RefinementRun:
        """`steps` refinement steps of real images in [-1, 1], each step's weighted loss
        back-propagated with `backward` (Lightning's `manual_backward` in training) before the
        next step starts from its detached codes and reconstruction."""
        codes = self.start_codes(real.shape[0])
        fake = self.average_images(real.shape[0])
        sums: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=real.device)
        first = None
        for _ in range(steps):
            # Detached: each step learns a residual from where the previous one left off.
            codes = self.refine(real, codes.detach(), fake.detach())
            fake = self.decode(codes)
            losses = self.losses(real, fake, codes)
            loss = self.weighted_total(losses)
            backward(loss)
            total = total + loss.detach()
            for name, value in losses.items():
                sums[name] = sums[name] + value.detach() if name in sums else value.detach()
            first = fake.detach() if first is None else first
        assert first is not None  # steps >= 1 (`training_iterations`): the loop ran
        last = {name: value.detach() for name, value in losses.items()}
        return RefinementRun(sums, last, total, first, fake.detach())

    def training_step(self, batch: Any, batch_idx: int) -> None:
        """One refinement run with a backward pass per step (see the module docstring)."""
        [optimizer] = self.iteration_optimizers(batch_idx)
        real = self.real_images(batch)
        run = self.backward_refinement(real, self.training_iterations(), self.manual_backward)
        if self.ends_iteration(batch_idx):
            self.vet_iteration(run.sums, {"encoder": self.encoder.parameters()}, [optimizer])
            self.step_optimizers([optimizer])
        if self.logs_this_step(batch_idx):
            # Terms of the last step (the codes an N-step inversion returns); the loss is the
            # sum over steps, the one the gradients are of.
            logs = {f"train/loss_{name}": value for name, value in run.last.items()}
            logs["train/loss"] = run.loss
            logs["train/mae"] = (real - run.last_images).abs().mean()
            logs["train/mae_first_step"] = (real - run.first_images).abs().mean()
            self.log_training_values(logs, real.shape[0], {"mae": "train/mae"})

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Nothing: `training_step` vets the iteration before it steps (pSp vets here)."""
