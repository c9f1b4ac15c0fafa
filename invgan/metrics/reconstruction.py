"""Reconstruction error between images and their reconstructions, both in [-1, 1].

Per image: MAE, MSE, PSNR and SSIM, all in float64. `ReconstructionErrorAccumulator` sums them
over batches in one tensor, so that a distributed caller can `all_reduce` it before `compute()`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

DATA_RANGE = 2.0  # max - min of images in [-1, 1]; sets PSNR's peak and SSIM's C1, C2
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
_KEYS = ("mae", "mse", "psnr", "ssim")


def _check_pair(images: Tensor, reconstructions: Tensor) -> None:
    if images.shape != reconstructions.shape:
        raise ValueError(
            f"images {tuple(images.shape)} and reconstructions {tuple(reconstructions.shape)} "
            "must have the same shape"
        )
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"expected a non-empty (N, C, H, W) batch, got {tuple(images.shape)}")


def _absolute_error_sum(images: Tensor, reconstructions: Tensor) -> Tensor:
    # float64 so that sums over many batches stay exact to round-off, whatever the split
    return (images.detach().double() - reconstructions.detach().double()).abs().sum()


def mean_absolute_error(images: Tensor, reconstructions: Tensor) -> Tensor:
    """Mean of |x - x_hat| over images, channels and pixels, in [-1, 1] units (float64 scalar)."""
    _check_pair(images, reconstructions)
    return _absolute_error_sum(images, reconstructions) / images.numel()


def _gaussian_window_1d(dtype: torch.dtype, device: torch.device) -> Tensor:
    offsets = torch.arange(SSIM_WINDOW, dtype=dtype, device=device) - (SSIM_WINDOW - 1) / 2
    weights = torch.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    return weights / weights.sum()


def _local_means(maps: Tensor) -> Tensor:
    """Gaussian-weighted means of each channel over every window that fits inside the image."""
    channels = maps.shape[1]
    window = _gaussian_window_1d(maps.dtype, maps.device)
    # The 2-D window is the outer product of two normalised 1-D ones, so two 1-D passes give
    # the same means (to round-off) for 2/11 of the work of one 11x11 pass.
    rows = window.view(1, 1, 1, SSIM_WINDOW).expand(channels, 1, 1, SSIM_WINDOW)
    columns = window.view(1, 1, SSIM_WINDOW, 1).expand(channels, 1, SSIM_WINDOW, 1)
    return F.conv2d(F.conv2d(maps, rows, groups=channels), columns, groups=channels)


def structural_similarity(images: Tensor, reconstructions: Tensor) -> Tensor:
    """Per-image SSIM (N,) of Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, range 2.

    Local means, variances and covariance are Gaussian-weighted population statistics, taken
    only where the whole window fits inside the image (no padding), per channel; the value is
    the mean of the SSIM map over channels and positions. This is skimage's
    `structural_similarity(..., gaussian_weights=True, use_sample_covariance=False,
    data_range=2)` and torchmetrics' `structural_similarity_index_measure(..., data_range=2.0)`
    before version 1.5; from 1.5 on torchmetrics averages a map of reflection-padded images over
    the full image instead, which weights the borders differently.
    """
    _check_pair(images, reconstructions)
    height, width = images.shape[-2:]
    if height < SSIM_WINDOW or width < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} px for its "
            f"{SSIM_WINDOW} px window, got {height}x{width}"
        )
    x = images.detach().double()
    y = reconstructions.detach().double()
    channels = x.shape[1]
    means = _local_means(torch.cat([x, y, x * x, y * y, x * y], dim=1)).split(channels, dim=1)
    mean_x, mean_y, mean_xx, mean_yy, mean_xy = means
    variance_x = mean_xx - mean_x**2
    variance_y = mean_yy - mean_y**2
    covariance = mean_xy - mean_x * mean_y
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    ssim_map = ((2 * mean_x * mean_y + c1) * (2 * covariance + c2)) / (
        (mean_x**2 + mean_y**2 + c1) * (variance_x + variance_y + c2)
    )
    return ssim_map.flatten(1).mean(1)


def per_image_reconstruction_errors(
    images: Tensor, reconstructions: Tensor, *, ssim: bool = True
) -> dict[str, Tensor]:
    """Float64 vectors (N,) of per-image `mae`, `mse`, `psnr` (dB) and, if `ssim`, `ssim`.

    MAE and MSE are means over channels and pixels. PSNR is 10 log10(2^2 / MSE) for the [-1, 1]
    range, so an exact reconstruction (MSE = 0) gives +inf, and so does any mean containing it.
    """
    _check_pair(images, reconstructions)
    difference = (images.detach().double() - reconstructions.detach().double()).flatten(1)
    mse = difference.square().mean(1)
    errors = {
        "mae": difference.abs().mean(1),
        "mse": mse,
        "psnr": 10 * torch.log10(DATA_RANGE**2 / mse),
    }
    if ssim:
        errors["ssim"] = structural_similarity(images, reconstructions)
    return errors


class ReconstructionErrorAccumulator:
    """Streaming mean over images of MAE, MSE, PSNR and (optionally) SSIM.

    The whole state is `sums`, a float64 tensor holding the sums of per-image mae, mse, psnr
    and ssim and the image count, so a distributed caller can `all_reduce` it (sum) in place
    and then `compute()`. Keep it on the device the collective needs (`device`).

    Images within one batch share C * H * W, so the mean of their per-image MAE is the mean of
    |x - x_hat| over all values; over batches of differently sized images, each image counts
    equally instead.
    """

    def __init__(self, ssim: bool = True, device: torch.device | str = "cpu") -> None:
        self.ssim = ssim
        self.sums = torch.zeros(len(_KEYS) + 1, dtype=torch.float64, device=device)

    def reset(self) -> None:
        """Forget all images seen so far."""
        self.sums.zero_()

    @property
    def count(self) -> int:
        """Number of images added so far (over all processes, after an `all_reduce`)."""
        return int(self.sums[-1].item())

    def update(self, images: Tensor, reconstructions: Tensor) -> None:
        """Add a batch of images and their reconstructions."""
        errors = per_image_reconstruction_errors(images, reconstructions, ssim=self.ssim)
        batch = [errors[key].sum() if key in errors else torch.zeros(()) for key in _KEYS]
        batch.append(torch.tensor(float(images.shape[0])))
        # One stacked add keeps `sums` on its own device whatever device the images are on.
        self.sums += torch.stack([value.to(self.sums) for value in batch])

    def compute(self) -> dict[str, float]:
        """Mean of each metric over every image added since the last reset."""
        count = self.count
        if count == 0:
            raise RuntimeError("ReconstructionErrorAccumulator.compute() called before update()")
        keys = _KEYS if self.ssim else tuple(key for key in _KEYS if key != "ssim")
        return {key: float(self.sums[_KEYS.index(key)] / count) for key in keys}
