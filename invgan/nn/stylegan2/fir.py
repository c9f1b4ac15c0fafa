"""FIR low-pass filtering for anti-aliased resampling (StyleGAN2's blur), in pure PyTorch.

Each filter is one depthwise convolution (groups = channels) with the 4x4 kernel, padding
and resampling folded into the convolution's own arguments: no pad, zero-insertion or reshape
ops around it. 2x upsampling (zero insertion, then the filter with gain 4) is one stride-2
transposed convolution, and the discriminator's blur before a stride-2 1x1 conv takes the
stride itself, computing only the pixels that conv keeps.

Why one 4x4 depthwise pass, measured fwd+bwd on (N, C, H, W) = (32, 512, 64, 64) on an H200
(and on (8, 128, 64, 64) on one CPU thread):
- NCHW: 2.9 ms (CPU 57 ms) against 3.3 ms (75 ms) for two separable 1-D passes and 7.0 ms
  (290 ms) for three 2x2 box filters; folding channels into the batch, (N * C, 1, H, W),
  for one single-channel conv was 4x slower on the GPU at 32 px and over 20x on the CPU.
- NHWC: a depthwise conv keeps the layout (the batch fold would force an NCHW copy). cuDNN's
  NHWC depthwise kernels take 7.6 ms (two 1-D passes 6.7 ms, box filters 9.5 ms), which makes
  a channels-last fp32 training iteration slower than an NCHW one; on the CPU NHWC is the
  faster layout (15 ms).
"""

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


def _rebuild_depthwise_weight(module: DepthwiseFIR, incompatible_keys: object) -> None:
    """load_state_dict post-hook: derive the convolution weight from the loaded `kernel`."""
    module.rebuild_depthwise_weight()


class DepthwiseFIR(nn.Module):
    """Holds the kernel (buffer `kernel`, the only state-dict entry) and the depthwise
    convolution weight (channels, 1, 4, 4) derived from it.

    The weight is a non-persistent buffer built at construction and after each state-dict
    load, not per call: an expanded view would be copied to a contiguous weight at every call.
    conv2d correlates, so the weight is the flipped kernel (a true convolution, as in the
    official upfirdn2d); conv_transpose2d already convolves, so it takes the kernel as it is.
    """

    # Buffers (nn.Module's attribute lookup would type them loosely).
    kernel: torch.Tensor
    depthwise_weight: torch.Tensor

    def __init__(self, channels: int, gain: float, flip: bool) -> None:
        super().__init__()
        self.channels = channels
        self.flip = flip
        self.register_buffer("kernel", blur_kernel(gain))
        weight = torch.empty(channels, 1, *self.kernel.shape)
        self.register_buffer("depthwise_weight", weight, persistent=False)
        self.rebuild_depthwise_weight()
        self.register_load_state_dict_post_hook(_rebuild_depthwise_weight)

    @torch.no_grad()
    def rebuild_depthwise_weight(self) -> None:
        """Copy the (flipped) kernel into every channel of `depthwise_weight`."""
        kernel = self.kernel.flip((0, 1)) if self.flip else self.kernel
        self.depthwise_weight.copy_(kernel.expand_as(self.depthwise_weight))


class Blur(DepthwiseFIR):
    """The blur kernel scaled to sum to `gain`, with symmetric zero `padding` and an optional
    output `stride` (blur-then-subsample in one pass).

    A gain of 4 compensates a preceding 2x zero-insertion upsampling. State dict: `kernel`.
    """

    def __init__(self, channels: int, padding: int, stride: int = 1, gain: float = 1.0) -> None:
        super().__init__(channels, gain, flip=True)
        self.padding = padding
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Low-pass filter x of shape (N, channels, H, W)."""
        return F.conv2d(
            x,
            self.depthwise_weight,
            stride=self.stride,
            padding=self.padding,
            groups=self.channels,
        )


class Upsample(DepthwiseFIR):
    """2x upsampling: zero insertion then the blur kernel with gain 4 (state dict: `kernel`)."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, gain=4.0, flip=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample x of shape (N, channels, H, W) to (N, channels, 2H, 2W)."""
        # Padding 1 crops the transposed conv's 2 * side + 2 pixels to 2 * side, the same
        # window as zero padding (2, 1) around the zero-inserted map.
        return F.conv_transpose2d(
            x, self.depthwise_weight, stride=2, padding=1, groups=self.channels
        )
