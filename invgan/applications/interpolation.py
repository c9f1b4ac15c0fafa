"""Interpolation between inverted images (InvGAN paper, Table 1's interpolation FID; the
walkthrough's W+ interpolation of Image2StyleGAN).

Images are paired 1-2, 3-4, ... (file-name order). Each pair's codes are interpolated in
`steps` equal steps, both ends included, so the first and last columns are the two
reconstructions. `space=w` interpolates the method's codes (w or W+) linearly;
`space=z` interpolates the optimised prior samples z spherically (slerp), the path that keeps a
Gaussian sample's norm, and maps them with M. Only `inversion=optimization
inversion.space=z` yields z: the mapping network has no inverse.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from invgan.applications.editing import (
    check_whole_images,
    invert,
    pairs,
    save_codes,
    save_rows,
)
from invgan.inversion.protocols import InversionMethod, PriorInversion

SPACES = ("w", "z")


def interpolation_times(steps: int) -> torch.Tensor:
    """`steps` evenly spaced times from 0 to 1, both included."""
    if steps < 2:
        raise ValueError(f"interpolation needs steps >= 2 (the two ends), got {steps}")
    return torch.linspace(0.0, 1.0, steps)


def _per_time(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Times (S,) shaped (1, S, 1, ...) to broadcast against codes (P, 1, ...)."""
    return t.to(like).reshape(1, -1, *([1] * (like.ndim - 1)))


def lerp(start: torch.Tensor, end: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(1 - t) start + t end: (P, S, ...) from codes (P, ...) and times (S,); exact at 0, 1."""
    t = _per_time(t, start)
    return (1 - t) * start[:, None] + t * end[:, None]


def slerp(start: torch.Tensor, end: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985) of vectors (P, D) at times (S,): (P, S, D).

    sin((1 - t) omega) / sin(omega) start + sin(t omega) / sin(omega) end, omega the angle
    between them: equal-norm ends keep their norm all along. (Anti)parallel pairs, whose
    great circle is undefined, fall back to lerp.
    """
    omega = torch.arccos(F.cosine_similarity(start, end, dim=1).clamp(-1.0, 1.0))[:, None]
    sin_omega = torch.sin(omega)
    t = t.to(start)[None, :]
    degenerate = sin_omega.abs() < 1e-6
    safe = torch.where(degenerate, torch.ones_like(sin_omega), sin_omega)
    weight_start = torch.where(degenerate, 1 - t, torch.sin((1 - t) * omega) / safe)
    weight_end = torch.where(degenerate, t, torch.sin(t * omega) / safe)
    return weight_start[..., None] * start[:, None] + weight_end[..., None] * end[:, None]


def optimised_z(method: InversionMethod, images: torch.Tensor) -> torch.Tensor:
    """The prior samples z that optimisation in Z found for the images."""
    z = method.prior_samples(images) if isinstance(method, PriorInversion) else None
    if z is None:
        raise ValueError(
            "interpolation space=z needs each image's z, which only optimisation in Z gives "
            "(the mapping network has no inverse): add inversion=optimization "
            "inversion.space=z, or use application.space=w"
        )
    return z


@torch.no_grad()
def interpolate(
    method: InversionMethod, images: torch.Tensor, steps: int, space: str = "w"
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Images (P, steps, C, H, W) from image 1 to 2, 3 to 4, ..., and the codes used."""
    if space not in SPACES:
        raise ValueError(f"interpolation space={space!r}; choose one of {SPACES}")
    count = pairs(images)[0].shape[0]  # checks the pairing before any inversion
    t = interpolation_times(steps)
    saved = {"t": t}
    if space == "z":
        saved["z"] = slerp(*pairs(optimised_z(method, images)), t)
        codes = method.frozen_generator().map(saved["z"].flatten(0, 1))
    else:
        codes = lerp(*pairs(invert(method, images)[0]), t).flatten(0, 1)
    saved["codes"] = codes.unflatten(0, (count, steps))
    return method.decode(codes).unflatten(0, (count, steps)), saved


def run_interpolation(
    method: InversionMethod,
    images: torch.Tensor,
    resolution: int,
    output_dir: Path,
    steps: int = 8,
    space: str = "w",
    show_inputs: bool = True,
) -> list[Path]:
    """Write `interpolation.png` (a row per pair: [input 1], the steps, [input 2]) and
    `interpolation_codes.pt` (codes (P, steps, ...), times, and z for space=z)."""
    check_whole_images(images, resolution)
    frames, codes = interpolate(method, images, steps, space)
    columns = list(frames.unbind(1))
    if show_inputs:
        first, second = pairs(images)
        columns = [first, *columns, second]
    grid_path = save_rows(columns, output_dir / "interpolation.png")
    codes_path = save_codes(output_dir / "interpolation_codes.pt", space=space, **codes)
    return [grid_path, codes_path]
