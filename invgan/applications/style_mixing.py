"""Style mixing of inverted images (InvGAN paper, Figure 2): the first k style vectors (W+
layers, coarse to fine) of one image replace those of another, for k = 0, 1, ..., L.

Images are paired 1-2, 3-4, ... (file-name order). In each pair the first image receives the
first k style vectors of the second: k = 0 is the first image's reconstruction, k = L (the
generator's n_latent) the second's, and the columns in between move from the first image to
the second starting with the coarse layers (pose, shape), as in the paper's rows.

With `layers` = [start, end], each pair gives one image instead: the first image with the W+
layers start..end-1 of the second (e.g. the middle or fine layers only), as in StyleGAN's
coarse / middle / fine style mixing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from invgan.applications.editing import (
    check_whole_images,
    invert,
    pairs,
    save_codes,
    save_rows,
)
from invgan.inversion.protocols import InversionMethod


def mix_first_styles(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """W+ codes (N, L + 1, L, D): row k takes layers [0, k) from `source`, the rest from
    `target`, both W+ codes (N, L, D)."""
    layers = target.shape[1]
    from_source = (
        torch.arange(layers, device=target.device)[None, :]
        < torch.arange(layers + 1, device=target.device)[:, None]
    )
    return torch.where(from_source[None, :, :, None], source[:, None], target[:, None])


def check_layer_range(layers: Sequence[int], n_latent: int) -> tuple[int, int]:
    """(start, end) of a W+ layer range [start, end], end excluded, inside 0..n_latent."""
    if len(layers) != 2 or not 0 <= int(layers[0]) < int(layers[1]) <= n_latent:
        raise ValueError(
            f"style mixing layers={list(layers)} must be [start, end] with 0 <= start < end <= "
            f"{n_latent} (the generator's W+ layers, coarse first, end excluded), e.g. "
            f"application.layers=[0,{n_latent}]"
        )
    return int(layers[0]), int(layers[1])


def mix_layer_range(
    target: torch.Tensor, source: torch.Tensor, start: int, end: int
) -> torch.Tensor:
    """W+ codes (N, L, D): `target` with layers [start, end) taken from `source`."""
    start, end = check_layer_range((start, end), target.shape[1])
    layer = torch.arange(target.shape[1], device=target.device)
    from_source = (layer >= start) & (layer < end)
    return torch.where(from_source[None, :, None], source, target)


@torch.no_grad()
def style_mixing(
    method: InversionMethod, images: torch.Tensor, layers: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (P, L + 1, C, H, W): image 2i-1 with the first k styles of image 2i, k = 0..L,
    and their W+ codes (P, L + 1, L, D); with `layers` = [start, end], images (P, 1, C, H, W)
    and codes (P, 1, L, D): image 2i-1 with layers start..end-1 of image 2i."""
    count = pairs(images)[0].shape[0]  # checks the pairing before any inversion
    generator = method.frozen_generator()
    if generator.n_latent < 2:
        raise ValueError(
            "style mixing needs a generator with one style input per layer (W+, n_latent > 1, "
            "e.g. StyleGAN2); this generator takes one code per image, so there is nothing to mix"
        )
    if layers is not None:
        start, end = check_layer_range(layers, generator.n_latent)
    codes, _ = invert(method, images)
    target, source = pairs(generator.expand_to_codes(codes))
    if layers is None:
        mixed = mix_first_styles(target, source)
    else:
        mixed = mix_layer_range(target, source, start, end)[:, None]
    decoded = method.decode(mixed.flatten(0, 1))
    return decoded.unflatten(0, (count, mixed.shape[1])), mixed


def run_style_mixing(
    method: InversionMethod,
    images: torch.Tensor,
    resolution: int,
    output_dir: Path,
    show_inputs: bool = True,
    layers: Sequence[int] | None = None,
) -> list[Path]:
    """Write `style_mixing.png` (a row per pair: [input 1], k = 0..L, [input 2]; with
    `layers`, the one mixed image in place of k = 0..L) and `style_mixing_codes.pt` (W+ codes
    (P, L + 1, L, D), index k = styles taken; with `layers`, (P, 1, L, D))."""
    check_whole_images(images, resolution)
    mixed_images, mixed_codes = style_mixing(method, images, layers)
    columns = list(mixed_images.unbind(1))
    if show_inputs:
        first, second = pairs(images)
        columns = [first, *columns, second]
    grid_path = save_rows(columns, output_dir / "style_mixing.png")
    codes_path = save_codes(output_dir / "style_mixing_codes.pt", codes=mixed_codes)
    return [grid_path, codes_path]
