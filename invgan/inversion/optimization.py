"""Optimisation-based inversion: find, for each image, the latent code (and optionally the
noise maps) whose generated image matches it, with Adam on the frozen generator.

One class covers three methods of the literature, chosen by configuration
(`conf/inversion/{optimization,hybrid,domain_regularized}.yaml`):

- pure optimisation (StyleGAN2's projector, Karras et al. 2020): start at the mean code,
  minimise pixel MSE + LPIPS, with noise maps regularised and renormalised;
- hybrid inversion: start from the model's own encoder, E(x) (InvGAN's latent head, pSp or the
  in-domain encoder), then optimise;
- domain-regularised inversion (IDInvert, Zhu et al. 2020): start from E(x) and add
  lambda_dom ||w - E(G(w))||^2, which keeps the code where the encoder can reach it, i.e. in
  the semantic domain of the generator. The encoder's weights stay fixed; only the code moves.

All images of a batch are optimised at once. The loss is a sum of per-image terms and Adam is
elementwise, so each image follows the same trajectory it would follow alone.

Masked inversion (inpainting): with a mask, only the known pixels are fitted. Both the generated
and the target image are multiplied by the mask before the pixel and the LPIPS terms, so the
unknown pixels are equal (zero) in both; the pixel term is the mean over the known pixels, and
the encoder start of hybrid and domain-regularised inversion is E(target * mask). The unknown
pixels of the target therefore cannot change the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import torch

from invgan.inversion.adam_descent import adam_betas, adam_descent, optimize_in_chunks
from invgan.inversion.encoder import own_encoder
from invgan.inversion.latent_spaces import ZSpace, build_space
from invgan.inversion.noise_regularization import noise_regularization, normalize_noise_
from invgan.inversion.protocols import GenerativeModel, InvertibleModel
from invgan.losses.perceptual import PerceptualDistance, loss_perceptual_distance
from invgan.nn.frozen_generator import FrozenGenerator
from invgan.utils.config_checks import check_count

INITS = ("mean", "encoder", "random")


class Inversion(NamedTuple):
    """Per-image result: generator codes, noise maps (None when not optimised), final loss
    (`LatentOptimization.losses`) and the optimised variable of the space (z in space z, which
    edits in Z such as spherical interpolation need; the codes themselves in w and w_plus)."""

    codes: torch.Tensor
    noise: list[torch.Tensor] | None
    loss: torch.Tensor
    variable: torch.Tensor


class LatentOptimization:
    """Inversion by optimising latent codes (see the module docstring for the three variants).

    Loss per image: mse_weight * mean (G(c) - x)^2 + lpips_weight * LPIPS(G(c), x)
    + noise_regularization * autocorrelation of the noise maps + domain_weight *
    mean (c - E(G(c)))^2 + p_norm_weight * P-norm (spaces p and p_plus only).

    Restarts are compared on this loss without the noise term (see `losses`).
    Restart 0 starts from `init` ("mean" of the space, "encoder": the model's codes converted
    into the space, "random": a prior sample); restart k > 0 starts from prior samples drawn
    with seed `seed + k` (restart 0 with "random" uses `seed`). Per image, the restart with the
    lowest final loss wins. `optimize_noise` fits StyleGAN2's noise maps too, starting from
    the generator's stored maps; it is ignored for generators without noise inputs.
    `batch_size` caps how many images are optimised at once (memory); None = the whole batch.
    """

    def __init__(
        self,
        model: GenerativeModel,
        space: str = "w",
        steps: int = 1000,
        lr: float = 0.1,
        lr_rampup: float = 0.05,
        lr_rampdown: float = 0.25,
        betas: Sequence[float] = (0.9, 0.999),
        mse_weight: float = 1.0,
        lpips_weight: float = 1.0,
        lpips: PerceptualDistance | Mapping[str, Any] | None = None,
        noise_regularization: float = 1e5,
        optimize_noise: bool = True,
        restarts: int = 1,
        init: str = "mean",
        domain_weight: float = 0.0,
        p_norm_weight: float = 0.0,
        batch_size: int | None = None,
        seed: int = 0,
    ) -> None:
        if init not in INITS:
            raise ValueError(f"inversion init={init!r}; choose one of {INITS}")
        check_count("inversion.steps", steps)
        check_count("inversion.restarts", restarts)
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or null, got {batch_size}")
        self.model = model
        self._checked_encoder: InvertibleModel | None = None
        # Built outside inference mode, so that these tensors can take part in autograd even
        # when the method is constructed under torch.inference_mode().
        with torch.inference_mode(False):
            self.generator = model.frozen_generator()
            self.space = build_space(space, self.generator)
            self.lpips = loss_perceptual_distance(
                lpips, lpips_weight, self.generator.latent_avg.device
            )
        self.steps = steps
        self.lr = lr
        self.lr_rampup = lr_rampup
        self.lr_rampdown = lr_rampdown
        self.betas = adam_betas(betas)
        self.mse_weight = mse_weight
        self.lpips_weight = lpips_weight
        self.noise_weight = noise_regularization
        self.optimize_noise = optimize_noise and self.generator.has_noise_inputs
        self.restarts = restarts
        self.init = init
        self.domain_weight = domain_weight
        self.p_norm_weight = p_norm_weight
        self.batch_size = batch_size
        self.seed = seed

    # ---------------------------------------------------------------- interface
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Optimised codes (w or W+, as the space gives) of images in [-1, 1]."""
        return self.invert(images).codes

    def frozen_generator(self) -> FrozenGenerator:
        """The generator `decode` runs: the copy whose codes are optimised."""
        return self.generator

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from codes, with the generator's stored noise maps."""
        return self.generator.synthesize(codes)

    def encode_masked(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Codes fitted to the known pixels (mask 1) of images in [-1, 1] only."""
        return self.invert(images, mask).codes

    def prior_samples(self, images: torch.Tensor) -> torch.Tensor | None:
        """The optimised z of each image in space z; None in the other spaces."""
        if not isinstance(self.space, ZSpace):
            return None
        return self.invert(images).variable

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """G(codes, noise) with the optimised codes and, when optimised, noise maps."""
        result = self.invert(images)
        return self.generator.synthesize(result.codes, result.noise)

    def invert(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> Inversion:
        """Codes, noise maps, final loss and variable of each image, `batch_size` at a time.

        `mask` (N, 1, H, W), 1 on known and 0 on unknown pixels, fits the known pixels only
        (see the module docstring); None fits every pixel.
        """
        if mask is not None:
            images = known_pixels(images, mask)
        chunks = optimize_in_chunks(self._best_of_restarts, self.batch_size, images, mask)
        chunk_noise = [c.noise for c in chunks if c.noise is not None]
        noise = None
        if chunk_noise:
            noise = [torch.cat(maps) for maps in zip(*chunk_noise, strict=True)]
        return Inversion(
            torch.cat([c.codes for c in chunks]),
            noise,
            torch.cat([c.loss for c in chunks]),
            torch.cat([c.variable for c in chunks]),
        )

    # ---------------------------------------------------------------- optimisation
    def _encoder(self, needed_by: str) -> InvertibleModel:
        """The model's encoder, checked once (the domain term asks at every step)."""
        if self._checked_encoder is None:
            self._checked_encoder = own_encoder(self.model, needed_by)
        return self._checked_encoder

    def _start(self, images: torch.Tensor, restart: int) -> torch.Tensor:
        """Initial variable of `restart` (see the class docstring)."""
        if restart == 0 and self.init == "mean":
            return self.space.initial(images.shape[0])
        if restart == 0 and self.init == "encoder":
            encoder = self._encoder("inversion.init=encoder")
            with torch.no_grad():
                return self.space.from_codes(encoder.encode(images))
        rng = torch.Generator().manual_seed(self.seed + restart)
        return self.space.initial(images.shape[0], rng)

    def _best_of_restarts(self, images: torch.Tensor, mask: torch.Tensor | None) -> Inversion:
        """Per image, the restart with the lowest final loss."""
        best = self._optimize(images, self._start(images, 0).detach(), mask)
        for restart in range(1, self.restarts):
            result = self._optimize(images, self._start(images, restart).detach(), mask)
            better = result.loss < best.loss
            codes = torch.where(_rows(better, result.codes), result.codes, best.codes)
            variable = torch.where(_rows(better, result.variable), result.variable, best.variable)
            noise = None
            if result.noise is not None and best.noise is not None:
                noise = [
                    torch.where(_rows(better, new), new, old)
                    for new, old in zip(result.noise, best.noise, strict=True)
                ]
            best = Inversion(codes, noise, torch.minimum(result.loss, best.loss), variable)
        return best

    def _initial_noise(self, count: int) -> list[torch.Tensor] | None:
        """The generator's stored noise maps, one copy per image, normalised."""
        if not self.optimize_noise:
            return None
        noise = [n.expand(count, -1, -1, -1).clone() for n in self.generator.noise_maps()]
        normalize_noise_(noise)
        return noise

    def _optimize(
        self, images: torch.Tensor, start: torch.Tensor, mask: torch.Tensor | None
    ) -> Inversion:
        """Adam on the variable (and noise maps) from `start` for `steps` steps."""
        variable = start.clone()
        noise = self._initial_noise(images.shape[0])

        def loss(step: int) -> torch.Tensor:
            total = self.losses(images, variable, noise, mask)
            if noise is not None and self.noise_weight:
                total = total + self.noise_weight * noise_regularization(noise)
            return total

        adam_descent(
            [variable, *(noise or [])],
            loss,
            self.steps,
            self.lr,
            self.lr_rampup,
            self.lr_rampdown,
            self.betas,
            after_step=None if noise is None else partial(normalize_noise_, noise),
        )
        with torch.no_grad():
            final = self.losses(images, variable, noise, mask)
            codes = self.space.to_codes(variable)
            noise = None if noise is None else [n.detach() for n in noise]
        return Inversion(codes.detach(), noise, final, variable.detach())

    def losses(
        self,
        images: torch.Tensor,
        variable: torch.Tensor,
        noise: list[torch.Tensor] | None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-image objective (N,) without the noise-map regulariser, whose floor for white
        noise (~1e5 / (H W) per map) would swamp the fit when restarts are compared on it.

        With a `mask`, `images` must already be `known_pixels(images, mask)`.
        """
        codes = self.space.to_codes(variable)
        generated = self.generator.synthesize(codes, noise)
        fitted = generated if mask is None else generated * mask
        squared_error = (fitted - images).square().flatten(1)
        if mask is None:
            loss = self.mse_weight * squared_error.mean(dim=1)
        else:
            known = mask.flatten(1).sum(dim=1) * images.shape[1]
            loss = self.mse_weight * squared_error.sum(dim=1) / known
        if self.lpips is not None:
            loss = loss + self.lpips_weight * self.lpips(fitted, images)
        if self.domain_weight:
            loss = loss + self.domain_weight * self.domain_distance(codes, generated)
        penalty = self.space.penalty(variable)
        if penalty is not None and self.p_norm_weight:
            loss = loss + self.p_norm_weight * penalty
        return loss

    def domain_distance(self, codes: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
        """Mean squared distance per image between codes and E(G(codes)) (IDInvert)."""
        reencoded = self._encoder("inversion.domain_weight > 0").encode(generated)
        if reencoded.shape != codes.shape:
            # A w head against W+ codes (or the reverse): compare every layer with w.
            codes = self.generator.expand_to_codes(codes)
            reencoded = self.generator.expand_to_codes(reencoded)
        return (codes - reencoded).square().flatten(1).mean(dim=1)


def known_pixels(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """images * mask, after checking that `mask` is (N, 1, H, W) in [0, 1] with known pixels."""
    batch, _, height, width = images.shape
    if mask.shape != (batch, 1, height, width):
        raise ValueError(
            f"the inversion mask must be (N, 1, H, W) = {(batch, 1, height, width)} for images "
            f"{tuple(images.shape)}, got {tuple(mask.shape)}"
        )
    if mask.min() < 0 or mask.max() > 1:
        raise ValueError("the inversion mask must lie in [0, 1]: 1 = known pixel, 0 = unknown")
    if (mask.flatten(1).sum(dim=1) == 0).any():
        raise ValueError("every image needs known pixels: a mask is all zero (nothing to fit)")
    # where, not a bare product: a negative pixel times 0 is -0.0, and the unknown pixels'
    # signs would then reach the networks.
    return torch.where(mask > 0, images * mask, torch.zeros_like(images))


def _rows(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-image boolean mask (N,) shaped to broadcast against `like` (N, ...)."""
    return mask.reshape(-1, *([1] * (like.ndim - 1)))
