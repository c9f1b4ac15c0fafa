"""Multi-code inversion (mGANprior, Gu et al. 2020): invert an image with M latent codes whose
intermediate features are composed before the rest of the generator.

The generator is split at layer l into G1 (codes -> features) and G2 (features -> image,
`invgan.nn.split`). Each image gets M codes z_k and M channel-wise weight vectors alpha_k, and
is reconstructed as G2(sum_k G1(z_k) * alpha_k) (Eq. 2 of the PmSFC paper, which restates
mGANprior); codes and weights minimise pixel MSE + LPIPS (Eq. 3, LPIPS standing in for the
VGG feature distance as in `invgan.inversion.optimization`). PmSFC (`invgan.inversion.pmsfc`)
is the same optimisation with another composition (`invgan.inversion.feature_composition`).

G2 of StyleGAN2 and BigGAN is styled by codes too. Gu et al. split PGGAN, whose G2 takes none;
to keep G2 a function of the composed features alone, each image gets one extra W+ code for
G2's layers, started at the average latent and optimised with the rest (`tail_codes:
optimize`) or held there (`mean`). DCGAN's G2 ignores it.

All images of a batch are optimised at once; the loss is a sum of per-image terms and Adam is
elementwise, and every image starts from the same codes, so each image's result does not
depend on the batch it is in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch

from invgan.inversion.adam_descent import adam_betas, adam_descent, optimize_in_chunks
from invgan.inversion.feature_composition import ChannelWeightedSum, SubspaceComposition
from invgan.inversion.latent_spaces import build_space
from invgan.inversion.protocols import GenerativeModel
from invgan.losses.perceptual import PerceptualDistance, loss_perceptual_distance
from invgan.nn.frozen_generator import FrozenGenerator
from invgan.nn.split import check_split_layer

TAIL_CODES = ("optimize", "mean")
Composition = ChannelWeightedSum | SubspaceComposition


class MultiCodes(NamedTuple):
    """Per-image variables of multi-code inversion.

    latents (N, M, *v): the M codes in the configured space (z: v = (z_dim,), w: (w_dim,),
    w_plus: (n_latent, w_dim)); weights (N, M, C): per code and G1 channel, as optimised
    (before PmSFC's tanh); tail (N, n_latent, w_dim): the W+ code that styles G2.
    """

    latents: torch.Tensor
    weights: torch.Tensor
    tail: torch.Tensor


class MultiCodeInversion:
    """Inversion method (`encode`, `decode`, `reconstruct`) by multi-code feature composition.

    `layer` is the split point l (1..generator.split_layers), `num_codes` M, `space` z (as in
    the paper), w or w_plus. Code 0 starts at the mean of the space and codes 1..M-1 at prior
    samples drawn with `seed`, the same for every image: from M equal codes every code would
    receive the same gradient and they would never separate. Weights start as the composition
    says (mGANprior: 1 / M, the mean of the features).

    `encode` returns the packed codes, one row per image: the flattened `MultiCodes` fields
    (latents, weights, tail) side by side; `decode` takes such rows, so averages of packed
    codes (evaluate.py's interpolation FID) average every variable. `invert` gives them
    unpacked.
    """

    def __init__(
        self,
        model: GenerativeModel,
        layer: int = 2,
        num_codes: int = 20,
        space: str = "z",
        tail_codes: str = "optimize",
        steps: int = 500,
        lr: float = 0.05,
        lr_rampup: float = 0.05,
        lr_rampdown: float = 0.25,
        betas: Sequence[float] = (0.9, 0.999),
        mse_weight: float = 1.0,
        lpips_weight: float = 1.0,
        lpips: PerceptualDistance | Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        seed: int = 0,
    ) -> None:
        if num_codes < 1:
            raise ValueError(f"num_codes must be >= 1, got {num_codes}")
        if tail_codes not in TAIL_CODES:
            raise ValueError(f"tail_codes={tail_codes!r}; choose one of {TAIL_CODES}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or null, got {batch_size}")
        self.model = model
        # Built outside inference mode, so that these tensors can take part in autograd even
        # when the method is constructed under torch.inference_mode().
        with torch.inference_mode(False):
            self.generator = model.frozen_generator()
            self.layer = check_split_layer(
                layer, self.generator.split_layers, type(self.generator.generator).__name__
            )
            self.space = build_space(space, self.generator)
            self.lpips = loss_perceptual_distance(
                lpips, lpips_weight, self.generator.latent_avg.device
            )
            with torch.no_grad():
                average = self.generator.latent_avg[None]
                self.channels = self.generator.features(average, self.layer).shape[1]
        self.num_codes = num_codes
        self.tail_codes = tail_codes
        self.steps = steps
        self.lr = lr
        self.lr_rampup = lr_rampup
        self.lr_rampdown = lr_rampdown
        self.betas = adam_betas(betas)
        self.mse_weight = mse_weight
        self.lpips_weight = lpips_weight
        self.batch_size = batch_size
        self.seed = seed
        self.composition = self.build_composition()

    def build_composition(self) -> Composition:
        """mGANprior's channel-weighted sum of the codes' features."""
        return ChannelWeightedSum()

    @property
    def total_codes(self) -> int:
        """Codes per image, M."""
        return self.num_codes

    # ---------------------------------------------------------------- interface
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Packed codes (N, P) of images in [-1, 1] (see the class docstring)."""
        return self.pack(self.invert(images))

    def frozen_generator(self) -> FrozenGenerator:
        """The generator `decode` runs: the copy whose codes and channel weights are optimised."""
        return self.generator

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from packed codes."""
        return self.synthesize(self.unpack(codes))

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """G2(composed features) of the optimised codes."""
        with torch.no_grad():
            return self.synthesize(self.invert(images))

    def invert(self, images: torch.Tensor) -> MultiCodes:
        """Optimised codes of images in [-1, 1], `batch_size` images at a time."""
        parts = optimize_in_chunks(self._optimize, self.batch_size, images)
        return MultiCodes(*(torch.cat(field) for field in zip(*parts, strict=True)))

    # ---------------------------------------------------------------- generation
    def composed_features(self, codes: MultiCodes) -> torch.Tensor:
        """The composition of the M codes' G1 features, (N, C, H, W)."""
        count, num_codes = codes.latents.shape[:2]
        features = self.generator.features(
            self.space.to_codes(codes.latents.flatten(0, 1)), self.layer
        )
        return self.composition.compose(features.unflatten(0, (count, num_codes)), codes.weights)

    def synthesize_features(self, features: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1]: G2 of features (N, C, H, W) at the split layer, styled by W+
        codes `tail`."""
        return self.generator.synthesize_from(features, tail, self.layer)

    def synthesize(self, codes: MultiCodes) -> torch.Tensor:
        """Images in [-1, 1]: G2 of the composed features, styled by the tail codes."""
        return self.synthesize_features(self.composed_features(codes), codes.tail)

    # ---------------------------------------------------------------- packed codes
    def _shapes(self) -> list[tuple[int, ...]]:
        """Per-image shapes of the three `MultiCodes` fields."""
        variable = tuple(self.space.initial(1).shape[1:])
        return [
            (self.total_codes, *variable),
            (self.total_codes, self.channels),
            (self.generator.n_latent, self.generator.w_dim),
        ]

    def pack(self, codes: MultiCodes) -> torch.Tensor:
        """One row per image: latents, weights and tail code, flattened side by side."""
        return torch.cat([field.flatten(1) for field in codes], dim=1)

    def unpack(self, packed: torch.Tensor) -> MultiCodes:
        """`MultiCodes` from rows made by `pack`."""
        shapes = self._shapes()
        sizes = [math.prod(shape) for shape in shapes]
        if packed.ndim != 2 or packed.shape[1] != sum(sizes):
            raise ValueError(
                f"packed multi-codes of this method are (N, {sum(sizes)}) (latents "
                f"{shapes[0]}, weights {shapes[1]}, tail {shapes[2]} per image), got "
                f"{tuple(packed.shape)}; pass codes from this method's encode"
            )
        fields = packed.split(sizes, dim=1)
        return MultiCodes(
            *(field.reshape(-1, *shape) for field, shape in zip(fields, shapes, strict=True))
        )

    # ---------------------------------------------------------------- optimisation
    def initial_codes(self, count: int) -> MultiCodes:
        """The start of every image (see the class docstring)."""
        rng = torch.Generator().manual_seed(self.seed)
        starts = [self.space.initial(1)]
        if self.total_codes > 1:
            starts.append(self.space.initial(self.total_codes - 1, rng))
        latents = torch.cat(starts).detach()
        weights = self.composition.initial_weights(self.total_codes, self.channels, latents.device)
        tail = self.generator.expand_to_codes(self.generator.latent_avg[None])
        return MultiCodes(
            *(field.expand(count, *field.shape).clone() for field in (latents, weights, tail[0]))
        )

    def losses(self, images: torch.Tensor, codes: MultiCodes) -> torch.Tensor:
        """Per-image objective (N,): mse_weight * MSE + lpips_weight * LPIPS."""
        generated = self.synthesize(codes)
        loss = self.mse_weight * (generated - images).square().flatten(1).mean(dim=1)
        if self.lpips is not None:
            loss = loss + self.lpips_weight * self.lpips(generated, images)
        return loss

    def _optimize(self, images: torch.Tensor) -> MultiCodes:
        """Adam on the codes, weights (and tail codes) of one batch of images."""
        codes = self.initial_codes(images.shape[0])
        params = [codes.latents, codes.weights]
        if self.tail_codes == "optimize":
            params.append(codes.tail)
        adam_descent(
            params,
            lambda step: self.losses(images, codes),
            self.steps,
            self.lr,
            self.lr_rampup,
            self.lr_rampdown,
            self.betas,
        )
        return MultiCodes(*(field.detach() for field in codes))
