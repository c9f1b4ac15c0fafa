"""Subspace swap (PmSFC paper, Figure 6): exchange one subspace of the composed features of two
inverted images and decode with G2, to see what each discovered subspace controls.

Images are taken in pairs (0, 1), (2, 3), ...; each pair is inverted with PmSFC, and for each
subspace r the composed features of the two images swap their channels of subspace r before
G2 (each image keeps its own G2 code). The grid has one row per pair and subspace: image a,
image b, their reconstructions, then a with b's subspace r and b with a's.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from invgan.inversion.protocols import InversionMethod, SubspaceInversion
from invgan.utils.images import save_image_grid


class SwapResult(NamedTuple):
    """Reconstructions (N, C, H, W) and swaps (pairs, R, 2, C, H, W): [a <- b, b <- a]."""

    reconstructions: torch.Tensor
    swaps: torch.Tensor
    packed_codes: torch.Tensor


def _check_method(method: InversionMethod) -> SubspaceInversion:
    """The method, if it has subspaces to swap (PmSFC)."""
    if not isinstance(method, SubspaceInversion):
        raise ValueError(
            f"subspace_swap needs PmSFC's subspaces; got {type(method).__name__}. Run it with "
            "inversion=pmsfc"
        )
    return method


@torch.no_grad()
def swap_subspaces(method: SubspaceInversion, images: torch.Tensor) -> SwapResult:
    """Invert `images` (an even number, paired in order) and swap every subspace per pair."""
    if images.shape[0] < 2 or images.shape[0] % 2:
        raise ValueError(
            f"subspace_swap pairs its input images (0 with 1, 2 with 3, ...): give an even "
            f"number of at least 2, got {images.shape[0]}"
        )
    codes = method.invert(images)
    features = method.composed_features(codes)
    labels = method.subspace_labels.to(features.device)
    masks = labels[None] == torch.arange(int(labels.max()) + 1, device=labels.device)[:, None]
    first, second = features[0::2], features[1::2]
    swapped = []
    for mask in masks:
        a_from_b, b_from_a = first.clone(), second.clone()
        a_from_b[:, mask] = second[:, mask]
        b_from_a[:, mask] = first[:, mask]
        swapped.append(torch.stack([a_from_b, b_from_a], dim=1))
    # (pairs, R, 2, C, H, W) features -> images, a with a's G2 code and b with b's.
    stacked = torch.stack(swapped, dim=1)
    pairs, subspaces = stacked.shape[:2]
    tails = torch.stack([codes.tail[0::2], codes.tail[1::2]], dim=1)
    tails = tails[:, None].expand(-1, subspaces, -1, -1, -1).flatten(0, 2)
    decoded = method.synthesize_features(stacked.flatten(0, 2), tails)
    reconstructions = method.synthesize_features(features, codes.tail)
    return SwapResult(
        reconstructions, decoded.unflatten(0, (pairs, subspaces, 2)), method.pack(codes)
    )


def run_subspace_swap(
    method: InversionMethod, images: torch.Tensor, resolution: int, output_dir: Path
) -> list[Path]:
    """Write `subspace_swap.png` (a row per pair and subspace: a, b, their reconstructions,
    a <- b's subspace r, b <- a's) and `subspace_swap_codes.pt` (packed codes, channel labels)."""
    swapping = _check_method(method)
    result = swap_subspaces(swapping, images)
    pairs, subspaces = result.swaps.shape[:2]
    rows = []
    for pair in range(pairs):
        originals = images[2 * pair : 2 * pair + 2]
        rebuilt = result.reconstructions[2 * pair : 2 * pair + 2]
        for subspace in range(subspaces):
            rows.append(torch.cat([originals, rebuilt, result.swaps[pair, subspace]]))
    grid_path = save_image_grid(torch.cat(rows), output_dir / "subspace_swap.png", nrow=6)
    codes_path = output_dir / "subspace_swap_codes.pt"
    torch.save(
        {
            "packed_codes": result.packed_codes.cpu(),
            "labels": swapping.subspace_labels.cpu(),
            "layer": swapping.layer,
            "resolution": resolution,
        },
        codes_path,
    )
    return [grid_path, codes_path]
