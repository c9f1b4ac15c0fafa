"""De-blurring by latent extrapolation in the tiled latent space (InvGAN paper, Section 4.3).

The input is upsampled to the working resolution (bicubic), inverted patch by patch, blurred
with a Gaussian and inverted again. The paper takes the difference of the two codes as the
direction that blurs; moving the sharp code the opposite way, `w + a * (w - w_blurred)`,
extrapolates towards a sharper image, and the amount `a` is the user's choice (a = 0 is the
plain tiled reconstruction).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from invgan.inversion.protocols import Invertible
from invgan.inversion.tiled import decode_tiled, invert_tiled
from invgan.utils.images import save_image_grid


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with standard deviation `sigma` pixels (kernel covers +-3 sigma)."""
    if sigma <= 0:
        raise ValueError(f"blur_sigma must be positive, got {sigma}")
    kernel = 2 * math.ceil(3 * sigma) + 1
    return gaussian_blur(images, [kernel, kernel], [sigma, sigma])


def upsample(images: torch.Tensor, scale_factor: float) -> torch.Tensor:
    """Bicubic upsampling by `scale_factor` (1 leaves the images as they are), kept in [-1, 1]."""
    if scale_factor < 1:
        raise ValueError(f"scale_factor must be >= 1, got {scale_factor}")
    if scale_factor == 1:
        return images
    resized = F.interpolate(images, scale_factor=scale_factor, mode="bicubic", align_corners=False)
    return resized.clamp(-1.0, 1.0)


class DeblurResult(NamedTuple):
    """Upsampled inputs, outputs (amounts, N, C, H, W), per-patch codes and directions."""

    inputs: torch.Tensor
    outputs: torch.Tensor
    codes: torch.Tensor
    direction: torch.Tensor


@torch.no_grad()
def latent_deblur(
    model: Invertible,
    images: torch.Tensor,
    patch_size: int,
    amounts: Sequence[float],
    blur_sigma: float = 1.0,
    scale_factor: float = 1.0,
) -> DeblurResult:
    """Decode `w + a * (w - w_blurred)` for each amount `a`, w the tiled codes of the input."""
    upsampled = upsample(images, scale_factor)
    blurred_images = blur(upsampled, blur_sigma)  # checks blur_sigma before any inversion
    sharp = invert_tiled(model, upsampled, patch_size)
    blurred = invert_tiled(model, blurred_images, patch_size)
    direction = sharp.codes - blurred.codes
    outputs = torch.stack(
        [decode_tiled(model, sharp._replace(codes=sharp.codes + a * direction)) for a in amounts]
    )
    return DeblurResult(upsampled, outputs, sharp.codes, direction)


def run_deblur(
    model: Invertible,
    images: torch.Tensor,
    patch_size: int,
    output_dir: Path,
    amounts: Sequence[float] = (0.0, 1.0, 2.0, 3.0),
    blur_sigma: float = 1.0,
    scale_factor: float = 1.0,
) -> list[Path]:
    """Write `deblur.png` (a row per image: input, then one column per amount) and the codes."""
    result = latent_deblur(model, images, patch_size, amounts, blur_sigma, scale_factor)
    columns = torch.cat([result.inputs.unsqueeze(0), result.outputs]).transpose(0, 1)
    grid_path = save_image_grid(
        columns.flatten(0, 1), output_dir / "deblur.png", nrow=len(amounts) + 1
    )
    codes_path = output_dir / "deblur_codes.pt"
    torch.save(
        {
            "codes": result.codes.cpu(),
            "direction": result.direction.cpu(),
            "amounts": [float(a) for a in amounts],
        },
        codes_path,
    )
    return [grid_path, codes_path]
