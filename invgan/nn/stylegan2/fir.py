"""FIR low-pass filtering for anti-aliased resampling (StyleGAN2's blur), in pure PyTorch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Binomial filter of the official networks; its outer product is the 2-D blur kernel.
BLUR_TAPS = (1.0, 3.0, 3.0, 1.0)


def blur_kernel(gain: float = 1.0) -> torch.Tensor:
    """The separable 2-D kernel outer(taps, taps), normalised to sum to `gain`."""
    taps = torch.tensor(BLUR_TAPS)
    kernel = taps[None, :] * taps[:, None]
    return kernel * (gain / kernel.sum())


def upfirdn2d(
    x: torch.Tensor, kernel: torch.Tensor, up: int = 1, pad: tuple[int, int] = (0, 0)
) -> torch.Tensor:
    """Upsample by zero insertion, zero-pad each spatial side by `pad`, convolve every channel.

    `pad` = (before, after) applies to both height and width; the output side is
    side * up + before + after - kernel_size + 1.
    """
    n, c, h, w = x.shape
    if up > 1:
        # Interleave up - 1 zeros after every pixel along both axes.
        x = F.pad(x.reshape(n, c, h, 1, w, 1), (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    # conv2d correlates, so flip for a true convolution (a no-op for symmetric kernels).
    weight = kernel.flip((0, 1)).to(x.dtype).expand(c, 1, *kernel.shape)
    return F.conv2d(x, weight, groups=c)


class Blur(nn.Module):
    """The blur kernel scaled to sum to `gain`, with zero padding `pad` = (before, after).

    A gain of 4 compensates a preceding 2x zero-insertion upsampling. The kernel is a buffer
    named `kernel`, as in the official state dicts.
    """

    def __init__(self, pad: tuple[int, int], gain: float = 1.0) -> None:
        super().__init__()
        self.pad = pad
        self.register_buffer("kernel", blur_kernel(gain))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Low-pass filter x of shape (N, C, H, W)."""
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """2x upsampling: zero insertion then the blur kernel with gain 4 (buffer `kernel`)."""

    def __init__(self) -> None:
        super().__init__()
        # (2, 1) padding maps a side s to exactly 2 * s with the 4-tap kernel.
        self.pad = (2, 1)
        self.register_buffer("kernel", blur_kernel(gain=4.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample x of shape (N, C, H, W) to (N, C, 2H, 2W)."""
        return upfirdn2d(x, self.kernel, up=2, pad=self.pad)
