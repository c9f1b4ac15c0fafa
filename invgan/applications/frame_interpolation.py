"""Temporal interpolation of video frames in the tiled latent space (InvGAN paper, Sec. 4.3).

Each frame is inverted patch by patch; a frame at time t (in input-frame units, `factor` new
frames per input interval) gets, for every patch, the average of all frames' codes for that
patch weighted by a Gaussian window exp(-(t - j)^2 / (2 sigma^2)) around t.
"""

from __future__ import annotations

from pathlib import Path

import torch

from invgan.inversion.protocols import Invertible
from invgan.inversion.tiled import TiledLatents, decode_tiled, invert_tiled
from invgan.utils.images import save_image_grid, save_images


def gaussian_window_weights(num_frames: int, factor: int, sigma: float) -> torch.Tensor:
    """Row-normalised weights ((num_frames - 1) * factor + 1, num_frames) of input frames."""
    if num_frames < 2 or factor < 1 or sigma <= 0:
        raise ValueError(
            f"need at least 2 frames, factor >= 1 and sigma > 0; got {num_frames} frames, "
            f"factor {factor}, sigma {sigma}"
        )
    times = torch.arange((num_frames - 1) * factor + 1, dtype=torch.float64) / factor
    offsets = times[:, None] - torch.arange(num_frames, dtype=torch.float64)[None, :]
    weights = torch.exp(-offsets.square() / (2 * sigma**2))
    return weights / weights.sum(dim=1, keepdim=True)


@torch.no_grad()
def interpolate_frames(
    model: Invertible, frames: torch.Tensor, patch_size: int, factor: int, sigma: float = 0.5
) -> tuple[torch.Tensor, TiledLatents]:
    """Frames ((T - 1) * factor + 1, C, H, W) from T input frames, and their tiled codes."""
    latents = invert_tiled(model, frames, patch_size)
    weights = gaussian_window_weights(frames.shape[0], factor, sigma)
    codes = torch.einsum("ot,t...->o...", weights.to(latents.codes), latents.codes)
    interpolated = latents._replace(codes=codes)
    return decode_tiled(model, interpolated), interpolated


def run_frame_interpolation(
    model: Invertible,
    images: torch.Tensor,
    patch_size: int,
    output_dir: Path,
    factor: int = 4,
    sigma: float = 0.5,
) -> list[Path]:
    """Write every output frame as `frames/frame_NNNNN.png`, a strip of them, and the codes."""
    frames, latents = interpolate_frames(model, images, patch_size, factor, sigma)
    paths = save_images(frames, output_dir / "frames", "frame")
    paths.append(save_image_grid(frames, output_dir / "frame_interpolation.png", nrow=factor))
    codes_path = output_dir / "frame_codes.pt"
    torch.save({"codes": latents.codes.cpu(), "factor": factor, "sigma": sigma}, codes_path)
    return [*paths, codes_path]
