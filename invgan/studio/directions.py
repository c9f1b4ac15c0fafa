"""The directions the studio offers as sliders (SeFa's top components and saved directions
files), and the one direction that a position of all sliders amounts to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch

from invgan.applications.attribute_editing import alpha_scales
from invgan.directions.latent_directions import LatentDirections
from invgan.directions.saved import SavedDirections
from invgan.directions.sefa import SeFa
from invgan.inversion.protocols import InversionMethod
from invgan.nn.frozen_generator import FrozenGenerator


@dataclass(frozen=True)
class Slider:
    """One direction: its label, unit vector, W+ layers it moves (None: all) and `spread`,
    the latent distance of one standard deviation of the prior codes along it."""

    label: str
    vector: torch.Tensor
    layers: list[int] | None
    spread: float


def sliders_of(
    directions: LatentDirections, generator: FrozenGenerator, source: str
) -> list[Slider]:
    """A slider per direction, labelled `<name> (<source>)`, in prior standard deviations."""
    directions.check_generator(generator)
    spreads = alpha_scales("prior_std", directions, generator)
    return [
        Slider(f"{name} ({source})", directions.vectors[k], directions.layers, float(spreads[k]))
        for k, name in enumerate(directions.names)
    ]


def studio_sliders(
    method: InversionMethod,
    generator: FrozenGenerator,
    channels: int,
    resolution: int,
    sefa: dict[str, Any] | None,
    saved: Sequence[str | Path] = (),
) -> list[Slider]:
    """SeFa's top components (options `sefa` of `conf/application/direction/sefa.yaml`; None:
    none), then the directions of each saved `directions.pt`."""
    sliders = []
    if sefa is not None:
        found = SeFa(**sefa).find(method, channels, resolution)
        sliders += sliders_of(found, generator, "SeFa")
    for path in saved:
        found = SavedDirections(path).find(method, channels, resolution)
        sliders += sliders_of(found, generator, f"{found.method}, {Path(path).name}")
    return sliders


def _as_w_plus(slider: Slider, n_latent: int) -> torch.Tensor:
    """The slider's vector as a W+ direction (n_latent, w_dim), zero on layers it leaves."""
    if slider.vector.ndim == 2:
        return slider.vector
    rows = torch.zeros(n_latent, slider.vector.shape[-1], dtype=slider.vector.dtype)
    rows[slider.layers if slider.layers is not None else slice(None)] = slider.vector
    return rows


def combine(
    sliders: Sequence[Slider], strengths: Sequence[float], generator: FrozenGenerator, name: str
) -> LatentDirections:
    """One direction d = sum_k strength_k * spread_k * n_k, so that G(w + 1 * d) is the edit
    of every slider at once (alpha 1, latent units). It stays w-sized with the sliders'
    layers when they all share them, else it is a W+ direction."""
    if len(strengths) != len(sliders):
        raise ValueError(f"{len(strengths)} strengths for {len(sliders)} direction sliders")
    if not sliders:
        raise ValueError("there are no directions to edit along: set directions.sefa or saved")
    steps = [float(s) * slider.spread for s, slider in zip(strengths, sliders, strict=True)]
    shared = all(s.vector.ndim == 1 and s.layers == sliders[0].layers for s in sliders)
    if shared:
        terms = [step * s.vector for step, s in zip(steps, sliders, strict=True)]
        layers = sliders[0].layers
    else:
        terms = [
            step * _as_w_plus(s, generator.n_latent)
            for step, s in zip(steps, sliders, strict=True)
        ]
        layers = None
    # sum() starts at 0; with at least one slider (checked above) the result is a tensor.
    vector = cast(torch.Tensor, sum(terms))
    info = {
        "sliders": [s.label for s in sliders],
        "strengths_prior_std": [float(s) for s in strengths],
        "latent_steps": steps,
    }
    return LatentDirections(vector[None].clone(), [name], "studio", layers, info)
