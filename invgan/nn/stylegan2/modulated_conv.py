"""StyleGAN2's modulated convolution: weights scaled per sample by a style, then demodulated."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from invgan.nn.stylegan2.equalized import EqualLinear
from invgan.nn.stylegan2.fir import BLUR_TAPS, Blur


def _save_official_weight(
    module: ModulatedConv2d, state_dict: dict[str, Any], prefix: str, local_metadata: Any
) -> None:
    """state_dict post-hook: store `weight` in the official layout (1, out, in, k, k)."""
    key = prefix + "weight"
    weight = state_dict[key]
    state_dict[key] = (weight.transpose(0, 1) if module.upsample else weight).unsqueeze(0)


def _load_official_weight(
    module: ModulatedConv2d, state_dict: dict[str, Any], prefix: str, *args: Any
) -> None:
    """load_state_dict pre-hook: bring an official (1, out, in, k, k) `weight` to the layout
    the module holds (other shapes are left for the usual size check to report)."""
    key = prefix + "weight"
    if key in state_dict:
        state_dict[key] = module.held_from_official(state_dict[key])


def held_layout_converters(root: nn.Module) -> dict[int, Callable[[torch.Tensor], torch.Tensor]]:
    """For each modulated-convolution weight under `root` (by `id`), the function that brings a
    tensor of the official layout (such as an optimizer moment saved by a version that held
    the weight that way) to the layout the parameter is held in."""
    return {
        id(module.weight): module.held_from_official
        for module in root.modules()
        if isinstance(module, ModulatedConv2d)
    }


class ModulatedConv2d(nn.Module):
    """Convolution whose input channels are scaled by an affine function of w (the style).

    Demodulation rescales each sample's weights so every output channel has unit expected
    variance, which replaces StyleGAN's instance norm (StyleGAN2 paper, Section 2.2). With
    `upsample`, a stride-2 transposed convolution is followed by the blur filter.

    The per-sample weights w[o, i] * s[n, i] * d[n, o] are never built: scaling the input
    channels by the styles, running one ordinary convolution over the whole batch with the
    shared weight, and scaling the output channels by the demodulation coefficients
    d[n, o] = rsqrt(sum_{i,k} (w[o, i, k] s[n, i])^2 + eps) is the same linear map (the
    "non-fused" modulated convolution of NVIDIA's StyleGAN2-ADA). The grouped convolution
    over (1, N * C, H, W) that builds them cannot stay channels-last, and cuDNN runs it with
    layout transposes around every call (on an H200, a 64 px config-F InvGAN iteration took
    17,476 kernels with it, 6,518 of them transposes, and 3,315 without), so it is not kept
    even for inference.

    State dict: `weight` (1, out, in, k, k), `modulation.*`, and `blur.kernel` when
    upsampling. The parameter itself is 4-d, so that `module.to(memory_format=
    torch.channels_last)` converts it, and held in the layout its convolution takes:
    (out, in, k, k), or (in, out, k, k) for the transposed convolution, which channels-last
    then gives cuDNN without a per-call transpose. State-dict hooks convert to and from the
    official layout, so rosinality's `g_ema` files still load strictly.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        w_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
    ) -> None:
        super().__init__()
        if upsample and kernel_size % 2 == 0:
            raise ValueError(f"upsampling needs an odd kernel_size, got {kernel_size}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.upsample = upsample
        weight = torch.randn(out_channels, in_channels, kernel_size, kernel_size)
        self.weight = nn.Parameter(weight.transpose(0, 1).contiguous() if upsample else weight)
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        # With demodulation the equalized-lr scale cancels out but for the epsilon:
        # scale * rsqrt(scale^2 q + 1e-8) = rsqrt(q + 1e-8 / scale^2).
        self.demodulation_eps = 1e-8 / self.scale**2
        # Styles start at 1 so that a fresh network behaves like an unmodulated one.
        self.modulation = EqualLinear(w_dim, in_channels, bias_init=1.0)
        if upsample:
            # The transposed conv gives 2 * side + kernel_size - 2 pixels; this padding brings
            # the blurred result back to 2 * side. Gain 4 offsets the stride-2 zero insertion.
            padding = (len(BLUR_TAPS) + 1 - kernel_size) // 2
            self.blur = Blur(out_channels, padding=padding, gain=4.0)
        self.register_state_dict_post_hook(_save_official_weight)
        self.register_load_state_dict_pre_hook(_load_official_weight)

    def held_from_official(self, tensor: torch.Tensor) -> torch.Tensor:
        """A tensor of the official (1, out, in, k, k) layout in the held one; other shapes as
        they are."""
        if tensor.ndim != 5 or tensor.shape[0] != 1:
            return tensor
        return tensor[0].transpose(0, 1) if self.upsample else tensor[0]

    def _demodulation(self, styles: torch.Tensor) -> torch.Tensor:
        """d (N, out) from the styles (N, in), as one matrix product: (s^2) @ sum_k w^2."""
        energy = self.weight.square().sum(dim=(2, 3))
        in_by_out = energy if self.upsample else energy.t()
        return torch.rsqrt(styles.square() @ in_by_out + self.demodulation_eps)

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, add: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Convolve x (N, in, H, W) with weights modulated by w (N, w_dim), plus `add` (any
        tensor that broadcasts to the output: noise, a bias), added in the same multiply-add
        as the demodulation."""
        if self.demodulate:
            styles = self.modulation(w)
            coefficients = self._demodulation(styles)[:, :, None, None]
        else:
            # The equalized-lr scale goes into the styles' matrix product, not the weight.
            styles = self.modulation(w, gain=self.scale)
        x = x * styles[:, :, None, None]
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, self.weight, stride=2))
        else:
            out = F.conv2d(x, self.weight, padding=self.kernel_size // 2)
        if self.demodulate:
            return out * coefficients if add is None else torch.addcmul(add, out, coefficients)
        return out if add is None else out + add
