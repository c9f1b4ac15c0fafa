"""StyleGAN2-ADA-PyTorch pickles: a file built here in NVIDIA's structure loads without running
anything from it and reproduces NVIDIA's forward pass; hostile or unsupported files are refused.

The file is made as NVIDIA's `torch_utils.persistence` makes it: every network pickles as a
call of `torch_utils.persistence._reconstruct_persistent_obj(meta)`, with the module source,
the class name and the module's `__dict__` in `meta`, inside `dict(G=..., G_ema=..., ...)`.
Here the module source writes a marker file and the stand-in reconstructor writes another, so
that running either shows. The reference images follow the definitions of StyleGAN2-ADA's
`training/networks.py` (fused modulated convolution, `upfirdn2d` resampling), written out
below independently of invgan's generator.
"""

from __future__ import annotations

import math
import os
import pickle
import sys
import types
from pathlib import Path

import numpy
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from invgan.checkpoints.format import CheckpointError
from invgan.checkpoints.generator_import import load_frozen_generator
from invgan.checkpoints.nvidia_pickle import read_network_pickle

MARKER_ENV = "INVGAN_TEST_NVIDIA_MARKER"
# The "module source" stored in the file: running it leaves a marker file.
MODULE_SOURCE = f"import os\nopen(os.environ[{MARKER_ENV!r}], 'w').close()\n"
Z_DIM = W_DIM = 16
RESOLUTION, CHANNELS = 16, 3
CHANNEL_BASE, CHANNEL_MAX = 128, 16  # widths 16 (4 px), 16 (8 px), 8 (16 px)
MAPPING_LAYERS, MAPPING_LR = 2, 0.05  # not the 0.01 default: it must be read from the file
NUM_WS = 2 * int(math.log2(RESOLUTION)) - 2
FILTER = torch.tensor([1.0, 3.0, 3.0, 1.0])
FILTER = torch.outer(FILTER, FILTER) / torch.outer(FILTER, FILTER).sum()


def _reconstruct_persistent_obj(meta):
    """What the fake `torch_utils.persistence` names; the loader must never call it."""
    open(os.environ[MARKER_ENV] + ".reconstructor", "w").close()
    raise AssertionError("the file's reconstructor was called")


class EasyDict(dict):
    """dnnlib.util.EasyDict's pickled identity."""


@pytest.fixture
def nvidia_modules(monkeypatch, tmp_path):
    """Fake `torch_utils.persistence` and `dnnlib.util` modules, so that the pickle names the
    same globals as NVIDIA's; the marker files must never appear."""
    persistence = types.ModuleType("torch_utils.persistence")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util = types.ModuleType("dnnlib.util")
    EasyDict.__module__ = "dnnlib.util"
    util.EasyDict = EasyDict
    for name, module in {
        "torch_utils": types.ModuleType("torch_utils"),
        "torch_utils.persistence": persistence,
        "dnnlib": types.ModuleType("dnnlib"),
        "dnnlib.util": util,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    marker = tmp_path / "code_ran"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    yield marker
    assert not marker.exists(), "the module source stored in the file was executed"
    assert not Path(f"{marker}.reconstructor").exists(), "the file's reconstructor was called"


# ---------------------------------------------------------------- NVIDIA's structure
class Persistent(nn.Module):
    """Pickles as `persistence.persistent_class` objects do: reconstructor + meta."""

    def __init__(self, **init_kwargs) -> None:
        super().__init__()
        self._init_args = ()
        self._init_kwargs = init_kwargs

    def __reduce__(self):
        state = super().__reduce__()[2]
        meta = dict(
            type="class",
            version=6,
            module_src=MODULE_SOURCE,
            class_name=type(self).__name__,
            state=state,
        )
        return (sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (meta,))


class FullyConnectedLayer(Persistent):
    def __init__(self, in_features, out_features, lr_multiplier=1.0, bias_init=0.0):
        super().__init__(in_features=in_features, out_features=out_features)
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(bias_init + 0.1 * torch.randn(out_features))
        self.weight_gain = numpy.float64(lr_multiplier / numpy.sqrt(in_features))
        self.bias_gain = lr_multiplier


class MappingNetwork(Persistent):
    def __init__(self, num_layers, lr_multiplier):
        super().__init__(z_dim=Z_DIM, c_dim=0, w_dim=W_DIM, num_ws=NUM_WS, num_layers=num_layers)
        for index in range(num_layers):
            layer = FullyConnectedLayer(W_DIM, W_DIM, lr_multiplier=lr_multiplier)
            setattr(self, f"fc{index}", layer)
        self.register_buffer("w_avg", torch.randn(W_DIM))


class SynthesisLayer(Persistent):
    def __init__(self, in_channels, out_channels, resolution, up=1):
        super().__init__(in_channels=in_channels, out_channels=out_channels, up=up)
        self.resolution, self.up = resolution, up
        self.register_buffer("resample_filter", FILTER.clone())
        self.affine = FullyConnectedLayer(W_DIM, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(0.3 * torch.randn([]))
        self.bias = nn.Parameter(0.1 * torch.randn(out_channels))
        self.act_gain = numpy.float64(numpy.sqrt(2))


class ToRGBLayer(Persistent):
    def __init__(self, in_channels, out_channels):
        super().__init__(in_channels=in_channels, out_channels=out_channels, w_dim=W_DIM)
        self.affine = FullyConnectedLayer(W_DIM, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(0.1 * torch.randn(out_channels))
        self.weight_gain = numpy.float64(1 / numpy.sqrt(in_channels))


class SynthesisBlock(Persistent):
    def __init__(self, in_channels, out_channels, resolution):
        super().__init__(in_channels=in_channels, out_channels=out_channels, w_dim=W_DIM)
        self.register_buffer("resample_filter", FILTER.clone())
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, resolution, up=2)
        self.conv1 = SynthesisLayer(out_channels, out_channels, resolution)
        self.torgb = ToRGBLayer(out_channels, CHANNELS)


class SynthesisNetwork(Persistent):
    def __init__(self, **kwargs):
        super().__init__(w_dim=W_DIM, img_resolution=RESOLUTION, img_channels=CHANNELS, **kwargs)
        widths = {4 * 2**i: min(CHANNEL_BASE // (4 * 2**i), CHANNEL_MAX) for i in range(3)}
        for res, width in widths.items():
            setattr(self, f"b{res}", SynthesisBlock(widths.get(res // 2, 0), width, res))


class Generator(Persistent):
    def __init__(self, lr_multiplier=MAPPING_LR, synthesis=None):
        super().__init__(
            z_dim=Z_DIM,
            c_dim=0,
            w_dim=W_DIM,
            img_resolution=RESOLUTION,
            img_channels=CHANNELS,
            mapping_kwargs=EasyDict(num_layers=MAPPING_LAYERS),
            synthesis_kwargs=EasyDict(channel_base=CHANNEL_BASE, channel_max=CHANNEL_MAX),
        )
        self.synthesis = synthesis or SynthesisNetwork(
            channel_base=CHANNEL_BASE, channel_max=CHANNEL_MAX, num_fp16_res=0
        )
        self.mapping = MappingNetwork(MAPPING_LAYERS, lr_multiplier)


class SynthesisInput(Persistent):
    """StyleGAN3's Fourier-feature input layer (enough of it to be recognised)."""

    def __init__(self):
        super().__init__(w_dim=W_DIM, channels=16, size=36)
        self.register_buffer("freqs", torch.randn(16, 2))


class StyleGAN3Synthesis(Persistent):
    def __init__(self, conv_kernel):
        super().__init__(w_dim=W_DIM, img_resolution=RESOLUTION, conv_kernel=conv_kernel)
        self.input = SynthesisInput()
        self.L0_36_16 = ToRGBLayer(16, 16)


StyleGAN3Synthesis.__name__ = "SynthesisNetwork"


def _snapshot(path: Path, protocol: int = 4, **extra) -> dict[str, Generator]:
    """Write `dict(G, G_ema, augment_pipe, training_set_kwargs, ...)` as NVIDIA's training
    loop does (`pickle.dump`); returns the networks."""
    torch.manual_seed(0)
    networks = {"G": Generator(), "G_ema": Generator()}
    snapshot = {
        **networks,
        "D": None,
        "augment_pipe": None,
        "training_set_kwargs": EasyDict(resolution=RESOLUTION, use_labels=False),
        **extra,
    }
    with path.open("wb") as file:
        pickle.dump(snapshot, file, protocol=protocol)
    return networks


# ---------------------------------------------------------------- NVIDIA's forward pass
def _upfirdn(x, up=1, pad=(0, 0), gain=1.0):
    """upfirdn2d: zero-insertion upsampling, zero padding, convolution with FILTER * gain."""
    n, c, h, w = x.shape
    if up > 1:
        inserted = x.new_zeros(n, c, h * up, w * up)
        inserted[:, :, ::up, ::up] = x
        x = inserted
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    kernel = (FILTER * gain).flip([0, 1])[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, kernel, groups=c)


def _fc(t, name, x, lr=1.0, activate=False):
    weight = t[f"{name}.weight"] * (lr / math.sqrt(t[f"{name}.weight"].shape[1]))
    x = x @ weight.t() + t[f"{name}.bias"] * lr
    return F.leaky_relu(x, 0.2) * math.sqrt(2) if activate else x


def _modulated_conv(x, weight, styles, demodulate=True, up=False):
    """One convolution per sample with weights scaled by its styles (the fused form)."""
    w = weight[None] * styles[:, None, :, None, None]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()[:, :, None, None, None]
    out = []
    for n in range(x.shape[0]):
        if up:  # conv2d_resample: transposed conv, then the filter with padding 1 and gain 4
            y = F.conv_transpose2d(x[n : n + 1], w[n].transpose(0, 1), stride=2)
            out.append(_upfirdn(y, pad=(1, 1), gain=4.0))
        else:
            out.append(F.conv2d(x[n : n + 1], w[n], padding=weight.shape[-1] // 2))
    return torch.cat(out)


def _layer(t, name, x, w, up=False):
    styles = _fc(t, f"{name}.affine", w)
    x = _modulated_conv(x, t[f"{name}.weight"], styles, up=up)
    x = x + t[f"{name}.noise_const"] * t[f"{name}.noise_strength"]  # noise_mode='const'
    return F.leaky_relu(x + t[f"{name}.bias"][None, :, None, None], 0.2) * math.sqrt(2)


def _torgb(t, name, x, w):
    in_channels = t[f"{name}.weight"].shape[1]
    styles = _fc(t, f"{name}.affine", w) / math.sqrt(in_channels)
    x = _modulated_conv(x, t[f"{name}.weight"], styles, demodulate=False)
    return x + t[f"{name}.bias"][None, :, None, None]


def nvidia_mapping(t, z):
    """MappingNetwork.forward without truncation: w (N, w_dim)."""
    x = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
    for index in range(MAPPING_LAYERS):
        x = _fc(t, f"mapping.fc{index}", x, lr=MAPPING_LR, activate=True)
    return x


def nvidia_synthesis(t, ws):
    """SynthesisNetwork.forward(ws, noise_mode='const'): images from W+ (N, num_ws, w_dim)."""
    x = t["synthesis.b4.const"][None].repeat(ws.shape[0], 1, 1, 1)
    x = _layer(t, "synthesis.b4.conv1", x, ws[:, 0])
    img = _torgb(t, "synthesis.b4.torgb", x, ws[:, 1])
    for index, res in enumerate((8, 16)):
        first = 2 * index + 1  # each block starts where the previous one's to-RGB code is
        x = _layer(t, f"synthesis.b{res}.conv0", x, ws[:, first], up=True)
        x = _layer(t, f"synthesis.b{res}.conv1", x, ws[:, first + 1])
        img = _upfirdn(img, up=2, pad=(2, 1), gain=4.0) + _torgb(
            t, f"synthesis.b{res}.torgb", x, ws[:, first + 2]
        )
    return img


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize("protocol", [3, 4])
def test_pickle_loads_g_ema_and_reproduces_nvidias_forward_pass(
    nvidia_modules, tmp_path, protocol
):
    path = tmp_path / "network-snapshot.pkl"
    networks = _snapshot(path, protocol)
    frozen = load_frozen_generator(path, resolution=RESOLUTION, channels=CHANNELS)
    g_ema = {k: v.detach() for k, v in networks["G_ema"].state_dict().items()}

    assert (frozen.resolution, frozen.w_dim, frozen.n_latent) == (RESOLUTION, W_DIM, NUM_WS)
    assert frozen.generator.style[1].lr_mul == MAPPING_LR
    assert torch.equal(frozen.latent_avg, g_ema["mapping.w_avg"])
    z = torch.randn(3, Z_DIM, generator=torch.Generator().manual_seed(1))
    ws = torch.randn(3, NUM_WS, W_DIM, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(frozen.map(z), nvidia_mapping(g_ema, z), rtol=1e-5, atol=1e-5)
        images = frozen.synthesize(ws)
        torch.testing.assert_close(images, nvidia_synthesis(g_ema, ws), rtol=1e-4, atol=1e-4)
        # The snapshot's training generator G has other weights: G_ema is the one loaded.
        g = {k: v.detach() for k, v in networks["G"].state_dict().items()}
        assert (images - nvidia_synthesis(g, ws)).abs().max() > 0.1


def test_records_keep_the_source_as_text_and_the_init_kwargs(nvidia_modules, tmp_path):
    path = tmp_path / "network-snapshot.pkl"
    _snapshot(path)
    content = read_network_pickle(path)
    g_ema = content["G_ema"]
    assert g_ema.class_name == "Generator"
    assert g_ema.module_src == MODULE_SOURCE
    assert g_ema.init_kwargs["mapping_kwargs"] == {"num_layers": MAPPING_LAYERS}
    assert type(g_ema.init_kwargs["mapping_kwargs"]) is dict
    assert g_ema.child("mapping").child("fc0").state["weight_gain"] == pytest.approx(
        MAPPING_LR / 4
    )
    assert content["training_set_kwargs"] == {"resolution": RESOLUTION, "use_labels": False}


class RunsCode:
    """An object that pickles as a call of `function(argument)`."""

    def __init__(self, function, argument) -> None:
        self.function, self.argument = function, argument

    def __reduce__(self):
        return (self.function, (self.argument,))


@pytest.mark.parametrize(
    ("function", "global_name"),
    [(os.system, f"{os.system.__module__}.system"), (exec, "builtins.exec")],
)
def test_a_pickle_that_would_run_code_is_refused_naming_the_global(
    nvidia_modules, tmp_path, function, global_name
):
    ran = tmp_path / "payload_ran"
    command = f"touch {ran}" if function is os.system else f"open({str(ran)!r}, 'w').close()"
    path = tmp_path / "network-snapshot.pkl"
    # The payload sits next to a valid G_ema, where NVIDIA's loader would unpickle it too.
    _snapshot(path, augment_pipe=RunsCode(function, command))
    with pytest.raises(CheckpointError, match=f"refusing to load .*global {global_name}"):
        load_frozen_generator(path)
    assert not ran.exists()


def test_a_payload_inside_a_network_is_refused_too(nvidia_modules, tmp_path):
    ran = tmp_path / "payload_ran"
    path = tmp_path / "network-snapshot.pkl"
    torch.manual_seed(0)
    g_ema = Generator()
    g_ema.mapping.fc0.activation = RunsCode(os.system, f"touch {ran}")
    with path.open("wb") as file:
        pickle.dump({"G_ema": g_ema}, file)
    with pytest.raises(CheckpointError, match=f"global {os.system.__module__}.system"):
        load_frozen_generator(path)
    assert not ran.exists()


@pytest.mark.parametrize(("conv_kernel", "variant"), [(3, "StyleGAN3-T"), (1, "StyleGAN3-R")])
def test_stylegan3_files_get_a_clear_error(nvidia_modules, tmp_path, conv_kernel, variant):
    path = tmp_path / "stylegan3.pkl"
    with path.open("wb") as file:
        pickle.dump({"G_ema": Generator(synthesis=StyleGAN3Synthesis(conv_kernel))}, file)
    with pytest.raises(CheckpointError, match=rf"\({variant}\): architecture not supported"):
        load_frozen_generator(path)


def test_conditional_and_truncated_files_are_refused(nvidia_modules, tmp_path):
    conditional = tmp_path / "conditional.pkl"
    g_ema = Generator()
    g_ema._init_kwargs["c_dim"] = 10
    with conditional.open("wb") as file:
        pickle.dump({"G_ema": g_ema}, file)
    with pytest.raises(CheckpointError, match="conditional"):
        load_frozen_generator(conditional)

    whole = tmp_path / "network-snapshot.pkl"
    _snapshot(whole)
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(whole.read_bytes()[:3000])
    with pytest.raises(CheckpointError, match="truncated or not a network pickle"):
        load_frozen_generator(truncated)
    with pytest.raises(ValueError, match="resolution 16, but the config expects 64"):
        load_frozen_generator(whole, resolution=64)
