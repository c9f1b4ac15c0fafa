"""How the StyleGAN2 networks compute: the batched ("non-fused") modulated convolution and the
depthwise FIR filters equal the per-sample reference formulation, run channels-last end to
end, and stay within an aten-op budget."""

from __future__ import annotations

import collections
import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from invgan.nn.stylegan2.discriminator import StyleGAN2Discriminator
from invgan.nn.stylegan2.discriminator_blocks import ConvLayer
from invgan.nn.stylegan2.fir import Upsample
from invgan.nn.stylegan2.generator import StyleGAN2Generator
from invgan.nn.stylegan2.modulated_conv import ModulatedConv2d
from invgan.nn.stylegan2.synthesis_layers import StyledConv, ToImage

W_DIM = 16
# Tiny widths: 32 channels at 4 and 8 px, 16 at 16 px, 8 at 32 px.
TINY = dict(channel_base=256, channel_max=32, channel_multiplier=1)
Params = dict[str, torch.Tensor]


# ------------------------------------------------- the per-sample reference, from the maths
# Each function reads a module's official state dict (`state_dict(keep_vars=True)`, so that
# gradients reach the parameters) and computes with the original formulation: per-sample
# modulated and demodulated weights in one grouped convolution, resampling by zero insertion,
# zero padding and a 4x4 filter.


def ref_upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int, pad: tuple[int, int]):
    """Zero insertion by `up`, zero padding (before, after), true convolution with `kernel`."""
    n, c, h, w = x.shape
    if up > 1:
        x = F.pad(x.reshape(n, c, h, 1, w, 1), (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    weight = kernel.flip((0, 1)).expand(c, 1, *kernel.shape)
    return F.conv2d(x, weight, groups=c)


def ref_linear(p: Params, prefix: str, x: torch.Tensor, lr_mul: float = 1.0, act: bool = False):
    """Equalized-lr linear layer: x (A lr_mul / sqrt(in))^T + b lr_mul [-> scaled leaky ReLU]."""
    weight, bias = p[prefix + "weight"], p[prefix + "bias"]
    out = F.linear(x, weight * (lr_mul / math.sqrt(weight.shape[1])), bias * lr_mul)
    return F.leaky_relu(out, 0.2) * math.sqrt(2.0) if act else out


def ref_modulated_conv(
    p: Params, prefix: str, x: torch.Tensor, w: torch.Tensor, demodulate: bool, upsample: bool
) -> torch.Tensor:
    """Per-sample weights (N, out, in, k, k) as the groups of one convolution."""
    weight = p[prefix + "weight"]  # official layout (1, out, in, k, k)
    _, out_c, in_c, k, _ = weight.shape
    style = ref_linear(p, prefix + "modulation.", w)
    weight = weight / math.sqrt(in_c * k * k) * style[:, None, :, None, None]
    if demodulate:
        weight = weight * torch.rsqrt(weight.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
    n, _, h, width = x.shape
    x = x.reshape(1, n * in_c, h, width)
    if upsample:
        weight = weight.transpose(1, 2).reshape(n * in_c, out_c, k, k)
        out = F.conv_transpose2d(x, weight, stride=2, groups=n)
        out = out.view(n, out_c, *out.shape[2:])
        return ref_upfirdn2d(out, p[prefix + "blur.kernel"], up=1, pad=(1, 1))
    out = F.conv2d(x, weight.reshape(n * out_c, in_c, k, k), padding=k // 2, groups=n)
    return out.view(n, out_c, h, width)


def ref_styled_conv(p: Params, prefix: str, x, w, noise, upsample: bool) -> torch.Tensor:
    """Modulated conv, weighted noise, bias and scaled leaky ReLU."""
    out = ref_modulated_conv(p, prefix + "conv.", x, w, True, upsample)
    out = out + p[prefix + "noise.weight"] * noise
    out = out + p[prefix + "activate.bias"].view(1, -1, 1, 1)
    return F.leaky_relu(out, 0.2) * math.sqrt(2.0)


def ref_to_image(p: Params, prefix: str, x, w, skip: torch.Tensor | None) -> torch.Tensor:
    """Modulated 1x1 conv without demodulation, bias, plus the upsampled skip."""
    out = ref_modulated_conv(p, prefix + "conv.", x, w, False, False) + p[prefix + "bias"]
    if skip is None:
        return out
    return out + ref_upfirdn2d(skip, p[prefix + "upsample.kernel"], up=2, pad=(2, 1))


def ref_generator(g: StyleGAN2Generator, w_plus: torch.Tensor, noise: list[torch.Tensor]):
    """Images from W+ codes (N, n_latent, w_dim) and one noise map per styled conv."""
    p = g.state_dict(keep_vars=True)
    x = p["input.input"].expand(w_plus.shape[0], -1, -1, -1)
    x = ref_styled_conv(p, "conv1.", x, w_plus[:, 0], noise[0], False)
    image = ref_to_image(p, "to_rgb1.", x, w_plus[:, 1], None)
    for k in range(len(g.to_rgbs)):
        x = ref_styled_conv(p, f"convs.{2 * k}.", x, w_plus[:, 2 * k + 1], noise[2 * k + 1], True)
        x = ref_styled_conv(
            p, f"convs.{2 * k + 1}.", x, w_plus[:, 2 * k + 2], noise[2 * k + 2], False
        )
        image = ref_to_image(p, f"to_rgbs.{k}.", x, w_plus[:, 2 * k + 3], image)
    return image


def ref_mapping(g: StyleGAN2Generator, z: torch.Tensor, lr_mul: float = 0.01) -> torch.Tensor:
    """Pixel norm, then the equalized-lr layers with bias and scaled leaky ReLU."""
    p = g.state_dict(keep_vars=True)
    x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
    for i in range(1, len(g.style)):
        x = ref_linear(p, f"style.{i}.", x, lr_mul, act=True)
    return x


def ref_conv_layer(p: Params, prefix: str, x, k: int, downsample: bool, activate: bool = True):
    """[blur (pad (k+1)/2) ->] equalized conv (stride 2 when downsampling) [-> bias + act]."""
    if downsample:
        pad = (k + 1) // 2
        x = ref_upfirdn2d(x, p[prefix + "0.kernel"], up=1, pad=(pad, pad))
        weight, bias_key, stride, padding = p[prefix + "1.weight"], prefix + "2.bias", 2, 0
    else:
        weight, bias_key, stride, padding = p[prefix + "0.weight"], prefix + "1.bias", 1, k // 2
    out = F.conv2d(x, weight / math.sqrt(weight[0].numel()), stride=stride, padding=padding)
    if not activate:
        return out
    return F.leaky_relu(out + p[bias_key].view(1, -1, 1, 1), 0.2) * math.sqrt(2.0)


def ref_discriminator(d: StyleGAN2Discriminator, x: torch.Tensor, group: int = 4):
    """(logits, latents, trunk features) with the original minibatch-stddev reshapes."""
    p = d.state_dict(keep_vars=True)
    x = ref_conv_layer(p, "convs.0.", x, 1, False)
    features = [x]
    for j in range(1, len(d.convs)):
        main = ref_conv_layer(
            p, f"convs.{j}.conv2.", ref_conv_layer(p, f"convs.{j}.conv1.", x, 3, False), 3, True
        )
        skip = ref_conv_layer(p, f"convs.{j}.skip.", x, 1, True, activate=False)
        x = (main + skip) / math.sqrt(2.0)
        features.append(x)
    n, c, h, w = x.shape
    std = torch.sqrt(x.view(group, n // group, c, h, w).var(dim=0, unbiased=False) + 1e-8)
    std = std.mean(dim=(1, 2, 3)).view(1, n // group, 1, 1, 1).expand(group, -1, 1, h, w)
    out = ref_conv_layer(p, "final_conv.", torch.cat([x, std.reshape(n, 1, h, w)], 1), 3, False)
    out = ref_linear(p, "final_linear.0.", out.flatten(1), act=True)
    logits = ref_linear(p, "final_linear.1.", out).squeeze(1)
    latents = ref_conv_layer(p, "latent_head.0.", x, 3, False).flatten(1)
    latents = ref_linear(p, "latent_head.3.", ref_linear(p, "latent_head.2.", latents, act=True))
    return logits, latents, features


# ------------------------------------------------------------------------------ equivalence
def perturbed(module: torch.nn.Module) -> torch.nn.Module:
    """The module in float64 with every parameter and buffer moved off its initial value
    (styles away from 1, noise strengths and biases away from 0), kernels left symmetric."""
    torch.manual_seed(1)
    module = module.double()
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not name.endswith("kernel"):
                tensor.add_(0.3 * torch.randn_like(tensor))
    return module


def assert_same_outputs_and_gradients(
    module: torch.nn.Module, run: Callable[[], torch.Tensor], reference: Callable[[], torch.Tensor]
) -> None:
    """Equal outputs, and equal gradients of a random projection w.r.t. every parameter."""
    out, expected = run(), reference()
    torch.testing.assert_close(out, expected)
    projection = torch.randn_like(expected)
    params = [p for p in module.parameters() if p.requires_grad]
    grads = torch.autograd.grad((out * projection).sum(), params, allow_unused=True)
    ref_grads = torch.autograd.grad((expected * projection).sum(), params, allow_unused=True)
    for name_param, grad, ref_grad in zip(
        module.named_parameters(), grads, ref_grads, strict=True
    ):
        if ref_grad is None:
            assert grad is None or not grad.any(), name_param[0]
        else:
            torch.testing.assert_close(grad, ref_grad, msg=name_param[0])


@pytest.mark.parametrize("upsample", [False, True])
def test_modulated_conv_equals_per_sample_weights(upsample):
    layer = perturbed(ModulatedConv2d(3, 5, 3, W_DIM, upsample=upsample))
    x, w = torch.randn(4, 3, 6, 6, dtype=torch.double), torch.randn(4, W_DIM, dtype=torch.double)
    p = layer.state_dict(keep_vars=True)
    assert_same_outputs_and_gradients(
        layer, lambda: layer(x, w), lambda: ref_modulated_conv(p, "", x, w, True, upsample)
    )


def test_styled_conv_with_noise_equals_reference():
    layer = perturbed(StyledConv(3, 5, W_DIM, upsample=True))
    x, w = torch.randn(4, 3, 6, 6, dtype=torch.double), torch.randn(4, W_DIM, dtype=torch.double)
    noise = torch.randn(4, 1, 12, 12, dtype=torch.double)
    p = layer.state_dict(keep_vars=True)
    assert_same_outputs_and_gradients(
        layer, lambda: layer(x, w, noise), lambda: ref_styled_conv(p, "", x, w, noise, True)
    )


def test_to_image_with_skip_upsampling_equals_reference():
    layer = perturbed(ToImage(5, W_DIM, 3))
    x, w = torch.randn(4, 5, 8, 8, dtype=torch.double), torch.randn(4, W_DIM, dtype=torch.double)
    skip = torch.randn(4, 3, 4, 4, dtype=torch.double)
    p = layer.state_dict(keep_vars=True)
    assert_same_outputs_and_gradients(
        layer, lambda: layer(x, w, skip), lambda: ref_to_image(p, "", x, w, skip)
    )


@pytest.mark.parametrize(("kernel_size", "activate"), [(3, True), (1, False)])
def test_discriminator_downsampling_layer_equals_reference(kernel_size, activate):
    layer = perturbed(ConvLayer(4, 6, kernel_size, downsample=True, activate=activate))
    x = torch.randn(3, 4, 8, 8, dtype=torch.double)
    p = layer.state_dict(keep_vars=True)
    assert_same_outputs_and_gradients(
        layer, lambda: layer(x), lambda: ref_conv_layer(p, "", x, kernel_size, True, activate)
    )


def test_filters_follow_a_loaded_asymmetric_kernel():
    # The depthwise weights are derived from `kernel` when a state dict is loaded.
    upsample, blur = Upsample(3), ConvLayer(3, 4, 3, downsample=True)[0]
    kernel = torch.arange(16.0).view(4, 4)
    upsample.load_state_dict({"kernel": kernel})
    blur.load_state_dict({"kernel": kernel})
    x = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(upsample(x), ref_upfirdn2d(x, kernel, up=2, pad=(2, 1)))
    torch.testing.assert_close(blur(x), ref_upfirdn2d(x, kernel, up=1, pad=(2, 2)))


@pytest.mark.parametrize("codes", ["w", "w_plus"])
def test_generator_equals_reference(codes):
    g = perturbed(StyleGAN2Generator(W_DIM, 16, 3, n_mlp=2, **TINY))
    z = torch.randn(4, W_DIM, dtype=torch.double)
    torch.testing.assert_close(g.mapping(z), ref_mapping(g, z))
    shape = (4, W_DIM) if codes == "w" else (4, g.n_latent, W_DIM)
    w = torch.randn(shape, dtype=torch.double)
    w_plus = w[:, None].expand(-1, g.n_latent, -1) if codes == "w" else w
    sides = [4] + [2 ** (k // 2 + 3) for k in range(g.num_layers - 1)]
    noise = [torch.randn(4, 1, side, side, dtype=torch.double) for side in sides]
    assert_same_outputs_and_gradients(
        g, lambda: g(w, noise=list(noise)), lambda: ref_generator(g, w_plus, noise)
    )


def test_discriminator_equals_reference():
    d = perturbed(StyleGAN2Discriminator(W_DIM, 16, 3, **TINY))
    x = torch.randn(8, 3, 16, 16, dtype=torch.double)
    for got, expected in zip(d(x).features, ref_discriminator(d, x)[2], strict=True):
        torch.testing.assert_close(got, expected)

    def heads(out: tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]) -> torch.Tensor:
        return torch.cat([out[0][:, None], out[1]], dim=1)

    assert_same_outputs_and_gradients(
        d, lambda: heads(d(x)), lambda: heads(ref_discriminator(d, x))
    )


# ---------------------------------------------------------------------------- channels-last
# Ops that launch no kernel (views, metadata, allocation): not counted, and their outputs may
# be strided any way (an expanded constant, a channel slice).
NO_KERNEL_OPS = frozenset(
    "view _unsafe_view reshape _reshape_alias alias as_strided detach t transpose permute "
    "expand unsqueeze squeeze select slice split split_with_sizes unbind flatten lift_fresh "
    "empty_like".split()
)


class OpRecorder(TorchDispatchMode):
    """Counts the aten ops that reach the dispatcher (after autograd, so backward ops too),
    and notes every non-view op with a 4-d output that is not channels-last contiguous."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()
        self.not_channels_last: list[tuple[str, torch.Size]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name in NO_KERNEL_OPS:
            return out
        self.counts[name] += 1
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.ndim == 4:
                if not t.is_contiguous(memory_format=torch.channels_last):
                    self.not_channels_last.append((name, t.shape))
        return out

    @property
    def total(self) -> int:
        """Ops counted (views and metadata ops excluded)."""
        return sum(self.counts.values())


def forward_backward(g: StyleGAN2Generator, d: StyleGAN2Discriminator, w: torch.Tensor):
    """One generator and discriminator pass and the backward of a loss on both heads."""
    out = d(g(w))
    (out.logits.sum() + out.latents.square().sum()).backward()
    return out


def tiny_networks(resolution: int = 32) -> tuple[StyleGAN2Generator, StyleGAN2Discriminator]:
    torch.manual_seed(0)
    return (
        StyleGAN2Generator(W_DIM, resolution, 3, n_mlp=2, **TINY),
        StyleGAN2Discriminator(W_DIM, resolution, 3, **TINY),
    )


def test_channels_last_networks_stay_channels_last_and_compute_the_same():
    g, d = tiny_networks()
    w = torch.randn(4, W_DIM)
    expected = d(g(w))
    g_cl, d_cl = (net.to(memory_format=torch.channels_last) for net in tiny_networks())
    assert g_cl.convs[0].conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not g_cl.convs[0].conv.weight.is_contiguous()
    with OpRecorder() as recorder:
        out = forward_backward(g_cl, d_cl, w)
    # Every activation, gradient and weight gradient above 4x4 was NHWC. At 4x4 the
    # discriminator's heads flatten (N, C, 4, 4) in the official (C, H, W) order for their
    # linear layers, an NCHW copy (and NCHW gradients back to the conv before it), and the
    # minibatch stddev reduces over the batch into small NCHW maps.
    outside_heads = [
        (op, shape) for op, shape in recorder.not_channels_last if shape[2:] != (4, 4)
    ]
    assert not outside_heads, outside_heads
    torch.testing.assert_close(out.logits, expected.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.latents, expected.latents, rtol=1e-4, atol=1e-5)
    # The state dict is the same as NCHW networks': it loads either way.
    g_cl.load_state_dict(g.state_dict(), strict=True)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_bf16_autocast_trains_close_to_float32(memory_format):
    g, d = (net.to(memory_format=memory_format) for net in tiny_networks())
    w = torch.randn(4, W_DIM)
    expected = d(g(w)).logits
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = forward_backward(g, d, w)
    # Every parameter but the mapping network's (w is given) has a finite gradient.
    synthesis = [p for name, p in g.named_parameters() if not name.startswith("style.")]
    assert all(p.grad.isfinite().all() for p in [*synthesis, *d.parameters()])
    torch.testing.assert_close(out.logits.float(), expected, rtol=0.05, atol=0.05)


# ------------------------------------------------------------------------------- op budget
# aten ops (NO_KERNEL_OPS excluded) of `forward_backward` on `tiny_networks()` with 4 samples;
# on a GPU each is at least one kernel. The per-sample grouped formulation took 630 and the
# batched one takes 567; the budget leaves about 10% for changes. (The GPU gain is larger than
# these counts say: cuDNN ran grouped convolutions group by group, with layout transposes.)
OP_BUDGET = 620


def test_forward_backward_stays_within_the_op_budget():
    g, d = tiny_networks()
    with OpRecorder() as recorder:
        forward_backward(g, d, torch.randn(4, W_DIM))
    assert recorder.total <= OP_BUDGET, sorted(recorder.counts.items(), key=lambda kv: -kv[1])
