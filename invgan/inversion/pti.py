"""Pivotal Tuning Inversion (PTI, Roich et al. 2022): invert with any method to get a pivot
code per image (W optimisation by default), then fine-tune a copy of the generator's synthesis
network so that G_tuned(pivot) reproduces the image.

Loss per tuning step, over the images of one batch (one tuned generator per batch, as PTI's
multi-image mode): mse_weight * mean (G_t(w_p) - x)^2 + lpips_weight * LPIPS(G_t(w_p), x),
plus the locality regulariser every `locality_interval` steps: for prior samples z, the
truncated code w_z = avg + psi (M(z) - avg) gives a direction from each pivot, and
w_r = w_p + alpha (w_z - w_p) / ||w_z - w_p|| (norm over the whole W+ code, as PTI's repeated
w) is a code at distance alpha; locality_weight * (mean (G_t(w_r) - G_0(w_r))^2 +
LPIPS(G_t(w_r), G_0(w_r))) keeps the generator unchanged away from the pivots. Tuning stops
early once the batch's mean LPIPS reaches `lpips_threshold` (PTI's LPIPS_value_threshold).

Only a copy is tuned: the model's generator and the pivot method's stay frozen. `generator`
is that copy and keeps the weights tuned on the last batch that `encode` saw, so `decode` (and
the applications, through `frozen_generator()`) edits with them. Inversion cost therefore includes
the tuning; evaluation's seconds per image time `reconstruct`, pivot and tuning together.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import hydra
import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

from invgan.checkpoints.atomic import atomic_write
from invgan.inversion.adam_descent import adam_betas, optimize_in_chunks
from invgan.inversion.protocols import GenerativeModel, InversionMethod
from invgan.losses.perceptual import PerceptualDistance, loss_perceptual_distance
from invgan.nn.frozen_generator import FrozenGenerator
from invgan.utils.config_checks import ConfigValueError

DELTA_PREFIX = "delta."
PIVOTS_KEY = "pivots"


class Tuning(NamedTuple):
    """What tuning one batch gave: its pivots, the steps run and the final per-image losses."""

    pivots: torch.Tensor
    steps: int
    reconstruction_loss: torch.Tensor


class PivotalTuning:
    """PTI (see the module docstring) with the inversion method interface (`encode`,
    `decode`, `reconstruct`); `pivot` is an inversion config (`_target_` and options) built
    with the same model, or a method already built."""

    def __init__(
        self,
        model: GenerativeModel,
        pivot: Mapping[str, Any] | InversionMethod,
        tune_steps: int = 350,
        lr: float = 3e-4,
        betas: Sequence[float] = (0.9, 0.999),
        mse_weight: float = 1.0,
        lpips_weight: float = 1.0,
        lpips: PerceptualDistance | Mapping[str, Any] | None = None,
        lpips_threshold: float | None = 0.06,
        locality_weight: float = 0.1,
        locality_alpha: float = 30.0,
        locality_samples: int = 1,
        locality_interval: int = 1,
        locality_truncation: float = 0.5,
        save_tuned: str | None = None,
        seed: int = 0,
    ) -> None:
        _check(tune_steps >= 1, "inversion.tune_steps", tune_steps, "give at least 1 step")
        _check(lr > 0, "inversion.lr", lr, "give a positive learning rate (PTI: 3e-4)")
        _check(locality_weight >= 0, "inversion.locality_weight", locality_weight, "use >= 0")
        _check(locality_alpha > 0, "inversion.locality_alpha", locality_alpha, "use > 0 (30)")
        _check(locality_samples >= 1, "inversion.locality_samples", locality_samples, "use >= 1")
        _check(
            locality_interval >= 1, "inversion.locality_interval", locality_interval, "use >= 1"
        )
        _check(
            lpips_threshold is None or lpips_weight > 0,
            "inversion.lpips_threshold",
            lpips_threshold,
            "stopping on LPIPS needs inversion.lpips_weight > 0; set lpips_threshold=null",
        )
        self.model = model
        if isinstance(pivot, Mapping):
            pivot = hydra.utils.instantiate(pivot, model=model)
        if not isinstance(pivot, InversionMethod):
            raise ConfigValueError(
                f"inversion.pivot={type(pivot).__name__!r} is invalid: give an inversion config "
                "(e.g. conf/inversion/optimization.yaml) whose method encodes, decodes and "
                "reconstructs"
            )
        self.pivot: InversionMethod = pivot
        # Built outside inference mode so that the copy's weights can take gradients even when
        # the method is constructed under torch.inference_mode().
        with torch.inference_mode(False):
            # deepcopy: some models hand out their own generator (encoder recipes).
            self.original = copy.deepcopy(model.frozen_generator())
            self.generator: FrozenGenerator = copy.deepcopy(self.original)
            # Locality needs LPIPS as well; only both weights at 0 skip the network.
            needs_lpips = max(lpips_weight, locality_weight)
            self.lpips = loss_perceptual_distance(
                lpips, needs_lpips, self.original.latent_avg.device
            )
        mapping = {id(p) for p in self.generator.mapping.parameters()}
        # PTI tunes the synthesis network only; codes keep their meaning under the mapping.
        self.tuned_names = [
            name for name, p in self.generator.named_parameters() if id(p) not in mapping
        ]
        self.tune_steps = tune_steps
        self.lr = lr
        self.betas = adam_betas(betas)
        self.mse_weight = mse_weight
        self.lpips_weight = lpips_weight
        self.lpips_threshold = lpips_threshold
        self.locality_weight = locality_weight
        self.locality_alpha = locality_alpha
        self.locality_samples = locality_samples
        self.locality_interval = locality_interval
        self.locality_truncation = locality_truncation
        self.save_tuned = None if save_tuned is None else Path(save_tuned)
        self.seed = seed
        self.batches = 0
        self.last: Tuning | None = None
        self.seconds = {"pivot": 0.0, "tuning": 0.0}  # totals over every batch, wall clock

    # ---------------------------------------------------------------- interface
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Pivot codes of images in [-1, 1], after tuning `generator` on them (per batch)."""
        start = time.perf_counter()
        pivots = self.pivot.encode(images).detach()
        tuned = time.perf_counter()
        self.seconds["pivot"] += tuned - start
        (self.last,) = optimize_in_chunks(self._tune, None, images, pivots)
        self.seconds["tuning"] += time.perf_counter() - tuned
        if self.save_tuned is not None:
            self.save_delta(self.save_tuned / f"batch_{self.batches:05d}.safetensors")
        self.batches += 1
        return self.last.pivots

    def frozen_generator(self) -> FrozenGenerator:
        """The generator `decode` runs: the copy tuned on the last batch."""
        return self.generator

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from codes with the generator tuned on the last batch."""
        return self.generator.synthesize(codes)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """G_tuned(pivots) of the images."""
        return self.decode(self.encode(images))

    # ---------------------------------------------------------------- tuning
    def _reset(self) -> None:
        """The copy back to the original weights: each batch is tuned from the generator."""
        with torch.no_grad():
            for tuned, original in zip(
                self.generator.state_dict().values(),
                self.original.state_dict().values(),
                strict=True,
            ):
                tuned.copy_(original)

    def _tune(self, images: torch.Tensor, pivots: torch.Tensor) -> Tuning:
        """Adam on the copy's synthesis weights for up to `tune_steps` steps."""
        self._reset()
        named = dict(self.generator.named_parameters())
        params = [named[name] for name in self.tuned_names]
        for param in params:
            param.requires_grad_(True)
        optimizer = torch.optim.Adam(params, lr=self.lr, betas=self.betas)
        rng = torch.Generator().manual_seed(self.seed + self.batches)
        steps = 0
        try:
            for step in range(self.tune_steps):
                loss, lpips = self._reconstruction_losses(images, pivots)
                # A host read per step, as PTI's own threshold check: tuning is inference-time
                # work whose length depends on it.
                if (
                    self.lpips_threshold is not None
                    and float(lpips.detach().mean()) <= self.lpips_threshold
                ):
                    break
                total = loss.mean()
                if self.locality_weight and step % self.locality_interval == 0:
                    total = total + self.locality_weight * self.locality_loss(pivots, rng)
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                optimizer.step()
                steps += 1
        finally:
            for param in params:
                param.requires_grad_(False)
                param.grad = None
        with torch.no_grad():
            final, _ = self._reconstruction_losses(images, pivots)
        return Tuning(pivots, steps, final)

    def _reconstruction_losses(
        self, images: torch.Tensor, pivots: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image weighted reconstruction loss (N,) and LPIPS (N,) (zeros without it)."""
        generated = self.generator.synthesize(pivots)
        loss = self.mse_weight * (generated - images).square().flatten(1).mean(dim=1)
        lpips = torch.zeros_like(loss)
        if self.lpips is not None and self.lpips_weight:
            lpips = self.lpips(generated, images)
            loss = loss + self.lpips_weight * lpips
        return loss, lpips

    def locality_codes(self, pivots: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """W+ codes at distance `locality_alpha` from each pivot towards truncated prior
        samples: (N * locality_samples, n_latent, w_dim)."""
        device = pivots.device
        anchors = self.original.expand_to_codes(pivots).repeat(self.locality_samples, 1, 1)
        z = torch.randn(anchors.shape[0], self.original.z_dim, generator=rng).to(device)
        with torch.no_grad():
            avg = self.original.latent_avg
            w = avg + self.locality_truncation * (self.original.map(z) - avg)
        direction = self.original.expand_to_codes(w) - anchors
        norm = direction.flatten(1).norm(dim=1).clamp_min(1e-8)[:, None, None]
        return anchors + self.locality_alpha * direction / norm

    def locality_loss(self, pivots: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """Mean squared error + LPIPS between the tuned and original generator at
        `locality_codes` (PTI's space regulariser, unweighted)."""
        codes = self.locality_codes(pivots.detach(), rng)
        with torch.no_grad():
            target = self.original.synthesize(codes)
        generated = self.generator.synthesize(codes)
        loss = (generated - target).square().mean()
        if self.lpips is not None:
            loss = loss + self.lpips(generated, target).mean()
        return loss

    # ---------------------------------------------------------------- saving
    def weights_delta(self) -> dict[str, torch.Tensor]:
        """Tuned minus original synthesis weights, by parameter name."""
        tuned = dict(self.generator.named_parameters())
        original = dict(self.original.named_parameters())
        return {name: (tuned[name] - original[name]).detach() for name in self.tuned_names}

    def save_delta(self, path: str | Path) -> Path:
        """Write the last batch's weights delta and pivots as safetensors (atomically)."""
        if self.last is None:
            raise RuntimeError("nothing tuned yet: call encode or reconstruct first")
        tensors = {DELTA_PREFIX + k: v.cpu().contiguous() for k, v in self.weights_delta().items()}
        tensors[PIVOTS_KEY] = self.last.pivots.cpu().contiguous()
        metadata = {"tune_steps_run": str(self.last.steps), "images": str(len(self.last.pivots))}
        data = safetensors_bytes(tensors, metadata=metadata)
        return atomic_write(path, lambda file: file.write(data))


def load_tuned_delta(generator: FrozenGenerator, path: str | Path) -> torch.Tensor:
    """Add a saved weights delta to `generator` (a copy of the one PTI tuned) in place and
    return the batch's pivot codes."""
    params = dict(generator.named_parameters())
    with safe_open(str(path), framework="pt") as file:
        names = [k[len(DELTA_PREFIX) :] for k in file.keys() if k.startswith(DELTA_PREFIX)]
        unknown = sorted(set(names) - set(params))
        if unknown or PIVOTS_KEY not in file.keys():
            raise ValueError(
                f"{path} is not a PTI weights delta of this generator (unknown weights "
                f"{unknown[:3]}, pivots {'present' if PIVOTS_KEY in file.keys() else 'missing'})"
                ": load it into the generator of the run that inversion=pti tuned"
            )
        with torch.no_grad():
            for name in names:
                delta = file.get_tensor(DELTA_PREFIX + name)
                params[name].add_(delta.to(params[name]))
        return file.get_tensor(PIVOTS_KEY).to(generator.latent_avg.device)


def _check(ok: bool, key: str, value: Any, fix: str) -> None:
    """Refuse a config value with a message naming the key and the fix."""
    if not ok:
        raise ConfigValueError(f"{key}={value!r} is invalid: {fix}")
