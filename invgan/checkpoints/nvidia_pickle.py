"""StyleGAN2-ADA-PyTorch and StyleGAN3 network pickles (`.pkl`), read without running any code
from them, and their `G_ema` renamed to the layout of our StyleGAN2 generator.

NVIDIA's snapshots are `pickle.dump(dict(G=..., D=..., G_ema=..., augment_pipe=...,
training_set_kwargs=...))`. Their networks are "persistent" objects: each one pickles as a call
`torch_utils.persistence._reconstruct_persistent_obj(meta)`, where `meta` holds the source text
of the module defining the class (which that function `exec`s to rebuild the class), the class
name and the object's `__dict__` (for a torch module: `_parameters`, `_buffers`, `_modules` and
the constructor's `_init_kwargs`). `pickle.load` on such a file therefore runs whatever that
source, or any other global the file names, says.

Here a restricted unpickler rebuilds only tensors, numpy scalars and plain containers; the
persistence reconstructor is replaced by one that returns the stored `meta` as a
`PersistentRecord` (its source stays text and is never executed) and dnnlib's `EasyDict` is
rebuilt as a dict. Every other global is refused with an error that names it.

`G_ema`'s parameters are then renamed to rosinality's layout, which our
`invgan.nn.stylegan2.generator.StyleGAN2Generator` shares, so `generator_import` builds and
loads them as it loads a rosinality file (architecture read from the weights):

    mapping.fc<i>.{weight,bias}          -> style.<i+1>.*        (w_avg -> latent_avg)
    synthesis.b4.const                   -> input.input
    synthesis.b4.conv1 / torgb           -> conv1 / to_rgb1
    synthesis.b<2^(k+3)>.conv0 / conv1   -> convs.<2k> / convs.<2k+1>
    synthesis.b<2^(k+3)>.torgb           -> to_rgbs.<k>
    layer .affine / .bias / .noise_strength / .noise_const
        -> .conv.modulation / .activate.bias / .noise.weight / noises.noise_<n>

Only StyleGAN2 generators with the skip architecture and no class labels (config F, the
official FFHQ / CelebA-HQ networks) are supported. Output clamping (`conv_clamp`, 256 in ADA
training configs) is not applied: it acts only on activations beyond +-256, and fp16 layers
(`num_fp16_res`) run in fp32 here.
"""

from __future__ import annotations

import io
import os
import pickle
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy
import torch

from invgan.checkpoints.safe_load import CheckpointError
from invgan.nn.stylegan2.fir import BLUR_TAPS, blur_kernel

PICKLE_SUFFIX = ".pkl"
# generator_import reads the mapping's learning-rate multiplier from this content key: NVIDIA
# files store it (rosinality files do not), and the weights are stored divided by it.
MAPPING_LR_KEY = "mapping_lr_multiplier"
# StyleGAN2-ADA's defaults for arguments a pickle's `_init_kwargs` may leave out.
DEFAULT_MAPPING_LR = 0.01
NETWORK_KEY = "G_ema"

try:  # numpy 2 moved its pickle helpers to numpy._core; files name whichever wrote them.
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]


@dataclass
class PersistentRecord:
    """A persistent network as stored: class name, module source (text, never executed) and
    the object's `__dict__` (`state`)."""

    class_name: str
    module_src: str
    state: dict[str, Any] = field(repr=False)

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """The keyword arguments the network was constructed with."""
        return _plain(self.state.get("_init_kwargs") or {})

    @property
    def children(self) -> dict[str, Any]:
        """The submodules by attribute name (persistent records or None)."""
        return dict(self.state.get("_modules") or {})

    def child(self, name: str) -> PersistentRecord:
        """The submodule `name`, which must be a persistent network."""
        child = self.children.get(name)
        if not isinstance(child, PersistentRecord):
            raise CheckpointError(f"{self.class_name} has no network '{name}'")
        return child

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Its parameters and buffers and those of its submodules, by state-dict name."""
        found: dict[str, torch.Tensor] = {}
        for group in ("_parameters", "_buffers"):
            for name, value in (self.state.get(group) or {}).items():
                if isinstance(value, torch.Tensor):
                    found[prefix + name] = value
        for name, child in self.children.items():
            if isinstance(child, PersistentRecord):
                found.update(child.tensors(f"{prefix}{name}."))
        return found


class _EasyDict(dict):
    """dnnlib's EasyDict, rebuilt as a dict (`__dict__` takes any BUILD state harmlessly)."""


def _plain(value: Any) -> Any:
    """EasyDicts and OrderedDicts (recursively) as plain dicts."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(item) for item in value)
    return value


def _persistent_record(meta: Any) -> PersistentRecord:
    """Stands in for `torch_utils.persistence._reconstruct_persistent_obj`: the stored meta
    (class name, source text, state) instead of an object of a class built by `exec`."""
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise CheckpointError(
            f"a persistent object's metadata is a {type(meta).__name__}, not a class record"
        )
    state = meta.get("state") or {}
    if not isinstance(state, dict):
        raise CheckpointError(f"persistent {meta.get('class_name')!r} has no state dict")
    return PersistentRecord(str(meta.get("class_name")), str(meta.get("module_src", "")), state)


def _storage_from_bytes(data: Any) -> Any:
    """Stands in for `torch.storage._load_from_bytes`: a storage pickled inside the pickle
    (torch's own legacy format), loaded with `weights_only=True` on the CPU."""
    if not isinstance(data, bytes):
        raise CheckpointError("a tensor storage is not stored as bytes")
    storage = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(storage, torch.storage.TypedStorage):
        raise CheckpointError(f"a tensor storage holds a {type(storage).__name__}")
    return storage


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *unused: Any) -> Any:
    """Stands in for `torch._utils._rebuild_tensor_v2`: the values only (the file's
    requires_grad flag and backward hooks are dropped)."""
    if not isinstance(storage, torch.storage.TypedStorage):
        raise CheckpointError("a tensor is not built on a tensor storage")
    return torch._utils._rebuild_tensor(storage, int(offset), tuple(size), tuple(stride))


def _rebuild_parameter(data: Any, *unused: Any) -> Any:
    """Stands in for `torch._utils._rebuild_parameter(_with_state)`: the parameter's tensor."""
    if not isinstance(data, torch.Tensor):
        raise CheckpointError("a parameter does not hold a tensor")
    return data


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """Stands in for numpy's scalar reconstructor: a plain Python number (the layers' gains)."""
    if not isinstance(dtype, numpy.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise CheckpointError(f"a numpy scalar of dtype {dtype!r} is not a plain number")
    return _multiarray.scalar(dtype, data).item()


_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
# (module, name) -> what the restricted unpickler returns for that global.
ALLOWED_GLOBALS: dict[tuple[str, str], Callable[..., Any]] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_record,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("numpy", "dtype"): numpy.dtype,
    ("numpy", "ndarray"): numpy.ndarray,
    **{(module, "scalar"): _numpy_scalar for module in _NUMPY_MODULES},
    **{(module, "_reconstruct"): _multiarray._reconstruct for module in _NUMPY_MODULES},
}


def _refusal_hint(module: str) -> str:
    if module.startswith("dnnlib.tflib"):
        return (
            " It is a TensorFlow StyleGAN2 pickle: convert it to a PyTorch file first, e.g. "
            "with rosinality's convert_weight.py (a .pt file this loader reads), or use the "
            "PyTorch pickles NVIDIA publishes for StyleGAN2-ADA-PyTorch and StyleGAN3."
        )
    return ""


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only `ALLOWED_GLOBALS`; any other global raises `CheckpointError` naming it."""

    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        """The stand-in for an allowed global; a refusal for everything else."""
        allowed = ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise CheckpointError(
                f"refusing to load {self.path}: it pickles the global {module}.{name}, which "
                "could run code when unpickled; only the tensors, numbers and network records "
                f"of StyleGAN2-ADA-PyTorch / StyleGAN3 pickles are read.{_refusal_hint(module)}"
            )
        return allowed

    def persistent_load(self, pid: Any) -> Any:
        """Network pickles use no persistent ids (torch.save files do: those are `.pt`)."""
        raise CheckpointError(
            f"{self.path} is not a StyleGAN2-ADA-PyTorch / StyleGAN3 network pickle (it uses "
            "persistent ids, as torch.save does): name a torch.save file .pt, not .pkl"
        )


def read_network_pickle(path: str | os.PathLike) -> Any:
    """The content of an NVIDIA network pickle, its persistent networks as `PersistentRecord`s
    and its EasyDicts as dicts, read without executing anything from the file."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            return _RestrictedUnpickler(file, path).load()
    except CheckpointError:
        raise
    except Exception as error:  # a malformed pickle can fail in any way: all are unreadable
        raise CheckpointError(
            f"cannot read {path}: the file is truncated or not a network pickle ({error})"
        ) from error


# ---------------------------------------------------------------- G_ema -> our StyleGAN2
def _stylegan3_variant(synthesis: PersistentRecord) -> str:
    """T or R: StyleGAN3-R uses 1x1 convolutions and radial filters."""
    kwargs = synthesis.init_kwargs
    radial = kwargs.get("conv_kernel") == 1 or kwargs.get("use_radial_filters")
    return "R" if radial else "T"


def _check_stylegan2(path: Path, g_ema: PersistentRecord) -> None:
    """Refuse anything but an unconditional skip-architecture StyleGAN2 generator."""
    if g_ema.class_name != "Generator":
        raise CheckpointError(f"{path}: {NETWORK_KEY} is a {g_ema.class_name}, not a generator")
    synthesis = g_ema.child("synthesis")
    children = synthesis.children
    if "input" in children or any(re.match(r"L\d+_", name) for name in children):
        raise CheckpointError(
            f"{path}: {NETWORK_KEY} is a StyleGAN3 generator (StyleGAN3-"
            f"{_stylegan3_variant(synthesis)}): architecture not supported (StyleGAN3-T/R). "
            "Use a StyleGAN2 pickle (StyleGAN2-ADA-PyTorch, or StyleGAN3's stylegan2-*.pkl)."
        )
    kwargs = g_ema.init_kwargs
    if int(kwargs.get("c_dim", 0) or 0) > 0 or "embed" in g_ema.child("mapping").children:
        raise CheckpointError(
            f"{path}: {NETWORK_KEY} is conditional (c_dim={kwargs.get('c_dim')}); only "
            "unconditional generators are supported"
        )
    architecture = synthesis.init_kwargs.get("architecture", "skip")
    if architecture != "skip":
        raise CheckpointError(
            f"{path}: {NETWORK_KEY} uses the '{architecture}' synthesis architecture; only "
            "'skip' (StyleGAN2 config F, as our generator) is supported"
        )


def _mapping_lr(g_ema: PersistentRecord) -> float:
    """The mapping's learning-rate multiplier: each layer stores it as `bias_gain`."""
    first = g_ema.child("mapping").children.get("fc0")
    if isinstance(first, PersistentRecord) and first.state.get("bias_gain") is not None:
        return float(first.state["bias_gain"])
    mapping_kwargs = g_ema.init_kwargs.get("mapping_kwargs") or {}
    return float(mapping_kwargs.get("lr_multiplier", DEFAULT_MAPPING_LR))


def _check_filters(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Every resampling filter must be StyleGAN2's normalised [1, 3, 3, 1] outer product."""
    expected = blur_kernel(1.0)
    for name, tensor in tensors.items():
        if name.endswith("resample_filter") and not (
            tensor.shape == expected.shape and torch.allclose(tensor.float(), expected)
        ):
            raise CheckpointError(
                f"{path}: {name} is not the {list(BLUR_TAPS)} filter our generator uses"
            )


class _Renamer:
    """Copies NVIDIA-named tensors into a rosinality-named state dict, naming what is missing."""

    def __init__(self, path: Path, tensors: dict[str, torch.Tensor]) -> None:
        self.path = path
        self.tensors = tensors
        self.state: dict[str, torch.Tensor] = {}

    def get(self, name: str) -> torch.Tensor:
        if name not in self.tensors:
            raise CheckpointError(
                f"{self.path}: {NETWORK_KEY} lacks {name}: not a StyleGAN2 generator of "
                "StyleGAN2-ADA-PyTorch's layout"
            )
        return self.tensors[name].detach().float().clone()

    def mapping(self) -> None:
        layers = sorted(
            int(match.group(1))
            for name in self.tensors
            if (match := re.fullmatch(r"mapping\.fc(\d+)\.weight", name))
        )
        if layers != list(range(len(layers))) or not layers:
            raise CheckpointError(f"{self.path}: mapping layers {layers} are not fc0..fcN")
        for index in layers:
            weight = self.get(f"mapping.fc{index}.weight")
            if weight.shape[0] != weight.shape[1]:
                raise CheckpointError(
                    f"{self.path}: mapping.fc{index} is {weight.shape[1]} -> {weight.shape[0]}; "
                    "our mapping network needs z_dim = layer width = w_dim"
                )
            self.state[f"style.{index + 1}.weight"] = weight
            self.state[f"style.{index + 1}.bias"] = self.get(f"mapping.fc{index}.bias")

    def layer(self, ours: str, theirs: str, noise_index: int, upsample: bool) -> None:
        """A modulated conv layer (SynthesisLayer -> StyledConv) and its fixed noise map."""
        self.state[f"{ours}.conv.weight"] = self.get(f"{theirs}.weight").unsqueeze(0)
        self.state[f"{ours}.conv.modulation.weight"] = self.get(f"{theirs}.affine.weight")
        self.state[f"{ours}.conv.modulation.bias"] = self.get(f"{theirs}.affine.bias")
        self.state[f"{ours}.activate.bias"] = self.get(f"{theirs}.bias")
        if f"{theirs}.noise_strength" in self.tensors:
            strength = self.get(f"{theirs}.noise_strength").reshape(1)
            noise = self.get(f"{theirs}.noise_const")[None, None]
        else:  # use_noise=False: a zero strength makes any map irrelevant
            strength = torch.zeros(1)
            side = 2 ** ((noise_index + 5) // 2)
            noise = torch.zeros(1, 1, side, side)
        self.state[f"{ours}.noise.weight"] = strength
        self.state[f"noises.noise_{noise_index}"] = noise
        if upsample:
            self.state[f"{ours}.conv.blur.kernel"] = blur_kernel(4.0)

    def to_rgb(self, ours: str, theirs: str, upsample: bool) -> None:
        """A to-image layer (ToRGBLayer -> ToImage)."""
        self.state[f"{ours}.conv.weight"] = self.get(f"{theirs}.weight").unsqueeze(0)
        self.state[f"{ours}.conv.modulation.weight"] = self.get(f"{theirs}.affine.weight")
        self.state[f"{ours}.conv.modulation.bias"] = self.get(f"{theirs}.affine.bias")
        self.state[f"{ours}.bias"] = self.get(f"{theirs}.bias").reshape(1, -1, 1, 1)
        if upsample:
            self.state[f"{ours}.upsample.kernel"] = blur_kernel(4.0)


def _synthesis_resolutions(path: Path, g_ema: PersistentRecord) -> list[int]:
    """4, 8, ..., the resolution of every synthesis block."""
    names = g_ema.child("synthesis").children
    resolutions = sorted(int(name[1:]) for name in names if re.fullmatch(r"b\d+", name))
    if not resolutions or resolutions != [4 * 2**i for i in range(len(resolutions))]:
        raise CheckpointError(f"{path}: synthesis blocks {resolutions} are not b4, b8, ...")
    return resolutions


def rosinality_state(path: Path, g_ema: PersistentRecord) -> dict[str, torch.Tensor]:
    """`G_ema`'s weights under rosinality's names (those of our StyleGAN2 generator)."""
    _check_stylegan2(path, g_ema)
    tensors = g_ema.tensors()
    _check_filters(path, tensors)
    renamer = _Renamer(path, tensors)
    renamer.mapping()
    renamer.state["input.input"] = renamer.get("synthesis.b4.const").unsqueeze(0)
    renamer.layer("conv1", "synthesis.b4.conv1", 0, upsample=False)
    renamer.to_rgb("to_rgb1", "synthesis.b4.torgb", upsample=False)
    for k, resolution in enumerate(_synthesis_resolutions(path, g_ema)[1:]):
        block = f"synthesis.b{resolution}"
        renamer.layer(f"convs.{2 * k}", f"{block}.conv0", 2 * k + 1, upsample=True)
        renamer.layer(f"convs.{2 * k + 1}", f"{block}.conv1", 2 * k + 2, upsample=False)
        renamer.to_rgb(f"to_rgbs.{k}", f"{block}.torgb", upsample=True)
    return renamer.state


def read_nvidia_generator(path: str | os.PathLike) -> dict[str, Any]:
    """`G_ema` of a StyleGAN2-ADA-PyTorch / StyleGAN3 pickle as a rosinality-shaped content dict:
    `g_ema` (state dict), `latent_avg` (the tracked w average, or None) and the mapping's
    learning-rate multiplier under `MAPPING_LR_KEY`."""
    path = Path(path)
    content = read_network_pickle(path)
    g_ema = content.get(NETWORK_KEY) if isinstance(content, dict) else content
    if not isinstance(g_ema, PersistentRecord):
        found = sorted(content)[:10] if isinstance(content, dict) else type(content).__name__
        raise CheckpointError(
            f"{path} holds no '{NETWORK_KEY}' network (found {found}): not a StyleGAN2-ADA-"
            "PyTorch / StyleGAN3 snapshot"
        )
    w_avg = g_ema.child("mapping").tensors().get("w_avg")
    return {
        "g_ema": rosinality_state(path, g_ema),
        "latent_avg": None if w_avg is None else w_avg.detach().float().clone(),
        MAPPING_LR_KEY: _mapping_lr(g_ema),
    }
