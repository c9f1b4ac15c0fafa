"""The protocols of invgan/inversion/protocols.py: the project's models and inversion methods
satisfy them at run time (mypy checks them statically, invgan/inversion/protocol_conformance.py),
and the applications work with a model and methods that are not the project's classes, so
nothing dispatches on a concrete class."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from invgan.applications.attribute_editing import run_attribute_editing
from invgan.applications.inpainting import run_inpainting
from invgan.applications.interpolation import interpolate
from invgan.applications.style_mixing import style_mixing
from invgan.applications.subspace_swap import run_subspace_swap
from invgan.directions.sefa import SeFa
from invgan.inversion.encoder import EncoderInversion
from invgan.inversion.multi_code import MultiCodeInversion
from invgan.inversion.optimization import LatentOptimization
from invgan.inversion.pmsfc import PmSFCInversion
from invgan.inversion.protocols import (
    GenerativeModel,
    InversionMethod,
    InvertibleModel,
    IterativeEncoder,
    MaskedInversion,
    PriorInversion,
    SubspaceInversion,
)
from invgan.inversion.pti import PivotalTuning
from invgan.inversion.restyle import ReStyleInversion
from invgan.modules.invgan import InvGANModule
from invgan.modules.invgan_loss_config import InvGANLossConfig
from invgan.modules.psp import PSPModule
from invgan.modules.restyle import ReStyleModule
from invgan.nn.dcgan import DCGANDiscriminator, DCGANGenerator
from invgan.nn.encoders.psp import psp_encoder
from invgan.nn.frozen_generator import FrozenGenerator
from invgan.nn.mapping import MappingMLP
from invgan.nn.pretrained_generator import PretrainedGenerator
from invgan.nn.stylegan2.generator import StyleGAN2Generator
from invgan.studio.cached_inversion import CachedInversion
from invgan.utils.config_checks import ConfigValueError

SIDE = 16
FAST = {"steps": 2, "lpips_weight": 0.0}  # optimisation options that skip LPIPS


def _dcgan() -> FrozenGenerator:
    """A tiny frozen DCGAN (one code per image) with a standalone mapping network."""
    torch.manual_seed(0)
    frozen = FrozenGenerator(DCGANGenerator(8, SIDE, 3, base_width=4), MappingMLP(8, 8, 16))
    frozen.estimate_latent_avg(num_samples=256)
    return frozen


def _stylegan() -> FrozenGenerator:
    """A tiny frozen StyleGAN2 (W+ codes)."""
    torch.manual_seed(0)
    stylegan = StyleGAN2Generator(
        resolution=SIDE, w_dim=16, n_mlp=2, channel_base=256, channel_max=16, channel_multiplier=1
    )
    frozen = FrozenGenerator(stylegan)
    frozen.estimate_latent_avg(num_samples=256)
    return frozen


def _invgan() -> InvGANModule:
    torch.manual_seed(0)
    return InvGANModule(
        MappingMLP(8, 8, 16),
        DCGANGenerator(8, SIDE, 3, base_width=4),
        DCGANDiscriminator(8, SIDE, 3, base_width=4, latent_hidden_dim=16),
        InvGANLossConfig(),
        functools.partial(torch.optim.SGD, lr=0.1),
        functools.partial(torch.optim.SGD, lr=0.1),
    ).eval()


def _encoder_options() -> dict:
    return {
        "encoder": functools.partial(psp_encoder, blocks=[1, 1, 1, 1], base_width=8),
        "optimizer": functools.partial(torch.optim.Adam),
        "lpips_weight": 0.0,
    }


def _images(count: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# -------------------------------------------------------------------- the project's classes
def test_the_projects_models_offer_what_their_protocols_promise() -> None:
    models = {
        "invgan": _invgan(),
        "psp": PSPModule(_stylegan(), **_encoder_options()).eval(),
        "restyle": ReStyleModule(_stylegan(), iterations=2, **_encoder_options()).eval(),
        "pretrained": PretrainedGenerator(_dcgan()),
    }
    for name, model in models.items():
        assert isinstance(model, GenerativeModel), name
        assert isinstance(model, InvertibleModel) == (name != "pretrained"), name
        assert isinstance(model, IterativeEncoder) == (name == "restyle"), name
        # Consumers seed samples by keyword: InvGAN's `sample` takes its network set second.
        with torch.no_grad():
            first = model.sample(3, generator=torch.Generator().manual_seed(1))
            again = model.sample(3, generator=torch.Generator().manual_seed(1))
            other = model.sample(3, generator=torch.Generator().manual_seed(2))
        assert first.shape == (3, 3, SIDE, SIDE), name
        assert torch.equal(first, again) and not torch.equal(first, other), name
        assert isinstance(model.frozen_generator(), FrozenGenerator), name


def test_the_projects_methods_offer_their_protocol_and_only_their_abilities() -> None:
    invgan, stylegan = _invgan(), PretrainedGenerator(_stylegan())
    restyle = ReStyleModule(_stylegan(), iterations=2, **_encoder_options()).eval()
    optimization = LatentOptimization(invgan, **FAST)
    methods = {
        "encoder": EncoderInversion(invgan),
        "restyle": ReStyleInversion(restyle, iterations=2),
        "optimization": optimization,
        "mganprior": MultiCodeInversion(stylegan, layer=1, num_codes=2, **FAST),
        "pmsfc": PmSFCInversion(
            stylegan,
            num_subspaces=2,
            num_codes=1,
            layer=1,
            discovery={"steps": 2, "batch_size": 2},
            **FAST,
        ),
        "pti": PivotalTuning(
            invgan,
            optimization,
            tune_steps=1,
            lpips_weight=0.0,
            lpips_threshold=None,
            locality_weight=0.0,
        ),
    }
    methods["cached"] = CachedInversion(methods["encoder"])
    for name, method in methods.items():
        assert isinstance(method, InversionMethod), name
        assert isinstance(method.model, GenerativeModel), name
        assert isinstance(method.frozen_generator(), FrozenGenerator), name
        assert isinstance(method, MaskedInversion) == (name == "optimization"), name
        assert isinstance(method, PriorInversion) == (name == "optimization"), name
        assert isinstance(method, SubspaceInversion) == (name == "pmsfc"), name
    pmsfc = methods["pmsfc"]
    assert isinstance(pmsfc, PmSFCInversion)
    assert torch.equal(pmsfc.subspace_labels, pmsfc.composition.labels)


def test_prior_samples_are_the_z_whose_codes_optimisation_returns() -> None:
    model = PretrainedGenerator(_dcgan())
    images = _images(2)
    in_w = LatentOptimization(model, space="w", **FAST)
    assert in_w.prior_samples(images) is None
    in_z = LatentOptimization(model, space="z", **FAST)
    z = in_z.prior_samples(images)
    assert z is not None and z.shape == (2, model.generator.z_dim)
    # Optimisation is seeded, so encoding again reaches the same codes: M(z).
    with torch.no_grad():
        torch.testing.assert_close(in_z.frozen_generator().map(z), in_z.encode(images))


def test_a_model_without_an_encoder_is_refused_when_asked_to_encode() -> None:
    model = PretrainedGenerator(_dcgan())
    with pytest.raises(ConfigValueError, match="inversion=encoder .* has no encoder"):
        EncoderInversion(model).encode(_images(1))
    hybrid = LatentOptimization(model, init="encoder", **FAST)
    with pytest.raises(ConfigValueError, match="inversion.init=encoder .* has no encoder"):
        hybrid.encode(_images(1))
    domain = LatentOptimization(model, domain_weight=1.0, **FAST)
    with pytest.raises(ConfigValueError, match="domain_weight > 0 .* has no encoder"):
        domain.encode(_images(1))


def test_a_pti_pivot_that_is_not_an_inversion_method_is_refused_naming_the_key() -> None:
    encode_only = SimpleNamespace(encode=lambda images: images)  # no decode, model, ...
    with pytest.raises(ConfigValueError, match="inversion.pivot='SimpleNamespace' is invalid"):
        PivotalTuning(
            PretrainedGenerator(_dcgan()), encode_only, lpips_weight=0.0, lpips_threshold=None
        )


# -------------------------------------------------------------------- a user's own classes
class UserModel:
    """A generative model written outside invgan: only the protocol's members."""

    def __init__(self, frozen: FrozenGenerator) -> None:
        self.frozen = frozen

    @property
    def device(self) -> torch.device:
        return self.frozen.latent_avg.device

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.frozen.synthesize(codes)

    def sample(self, count: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.frozen.sample(torch.randn(count, self.frozen.z_dim, generator=generator))

    def frozen_generator(self) -> FrozenGenerator:
        return self.frozen


class UserMethod:
    """An inversion method written outside invgan: codes are the average latent plus a fixed
    random projection of the pixels (W+ for a W+ generator), a stand-in for any encoder."""

    def __init__(self, model: UserModel) -> None:
        self.model = model
        frozen = model.frozen_generator()
        rng = torch.Generator().manual_seed(3)
        self.projection = torch.randn(
            3 * SIDE * SIDE, frozen.n_latent, frozen.w_dim, generator=rng
        )
        self.encoded = 0

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self.encoded += images.shape[0]
        frozen = self.model.frozen_generator()
        offsets = torch.einsum("np,plw->nlw", images.flatten(1), self.projection) * 0.01
        codes = frozen.latent_avg + offsets
        return codes if frozen.n_latent > 1 else codes[:, 0]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(codes)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(images))

    def frozen_generator(self) -> FrozenGenerator:
        return self.model.frozen_generator()


class UserMaskedMethod(UserMethod):
    """A user method that also fits known pixels only: inpainting must use it."""

    def encode_masked(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.encode(images * mask) + 1.0  # distinguishable from the plain codes


class UserPriorMethod(UserMethod):
    """A user method that finds z (here: seeded prior samples, one per image)."""

    def prior_samples(self, images: torch.Tensor) -> torch.Tensor | None:
        rng = torch.Generator().manual_seed(int(images.shape[0]))
        return torch.randn(images.shape[0], self.model.frozen_generator().z_dim, generator=rng)


def test_style_mixing_takes_a_users_method() -> None:
    method = UserMethod(UserModel(_stylegan()))
    assert isinstance(method, InversionMethod)
    images = _images(2)
    mixed_images, mixed = style_mixing(method, images)
    codes = method.encode(images)
    layers = method.frozen_generator().n_latent
    assert mixed.shape == (1, layers + 1, layers, 16)
    for k in range(layers + 1):  # row k: the first k layers from image 2, the rest from image 1
        torch.testing.assert_close(mixed[0, k, :k], codes[1, :k])
        torch.testing.assert_close(mixed[0, k, k:], codes[0, k:])
    with torch.no_grad():
        expected = method.frozen_generator().synthesize(mixed[0])
    torch.testing.assert_close(mixed_images[0], expected)


def test_sefa_attribute_editing_takes_a_users_method(tmp_path: Path) -> None:
    method = UserMethod(UserModel(_dcgan()))
    images = _images(2)
    paths = run_attribute_editing(
        method, images, SIDE, tmp_path, SeFa(num_components=2), alphas=(-1.0, 0.0, 1.0)
    )
    assert all(path.is_file() for path in paths)
    saved = torch.load(tmp_path / "attribute_editing_codes.pt", weights_only=True)
    torch.testing.assert_close(saved["codes"], method.encode(images))
    directions = torch.load(tmp_path / "directions.pt", weights_only=True)
    assert directions["info"]["backbone"] == "DCGANGenerator"
    assert directions["vectors"].shape == (2, 8)


def test_inpainting_uses_a_users_masked_inversion(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    images = _images(2)
    masked = UserMaskedMethod(UserModel(_dcgan()))
    run_inpainting(masked, images, SIDE, tmp_path / "masked", box=[2, 2, 4, 4])
    saved = torch.load(tmp_path / "masked" / "inpainting_codes.pt", weights_only=True)
    expected = masked.encode_masked(torch.where(saved["mask"] > 0, images, 0.0), saved["mask"])
    torch.testing.assert_close(saved["masked"], expected)

    plain = UserMethod(UserModel(_dcgan()))
    with caplog.at_level(logging.WARNING):
        run_inpainting(plain, images, SIDE, tmp_path / "plain", box=[2, 2, 4, 4])
    saved = torch.load(tmp_path / "plain" / "inpainting_codes.pt", weights_only=True)
    assert "masked" not in saved and "UserMethod gives the repaired column only" in caplog.text


def test_z_interpolation_takes_a_users_prior_samples_and_refuses_without_them() -> None:
    images = _images(2)
    method = UserPriorMethod(UserModel(_dcgan()))
    frames, saved = interpolate(method, images, steps=3, space="z")
    z = method.prior_samples(images)
    assert z is not None
    torch.testing.assert_close(saved["z"][0, 0], z[0])  # slerp starts at image 1's z
    torch.testing.assert_close(saved["z"][0, -1], z[1])  # and ends at image 2's
    with torch.no_grad():
        expected = method.frozen_generator().sample(saved["z"][0])
    torch.testing.assert_close(frames[0], expected)
    with pytest.raises(ValueError, match="interpolation space=z needs each image's z"):
        interpolate(UserMethod(UserModel(_dcgan())), images, steps=3, space="z")


def test_subspace_swap_refuses_a_method_without_subspaces(tmp_path: Path) -> None:
    method = UserMethod(UserModel(_stylegan()))
    with pytest.raises(ValueError, match="subspace_swap needs PmSFC's subspaces; got UserMethod"):
        run_subspace_swap(method, _images(2), SIDE, tmp_path)
    assert method.encoded == 0  # refused before any inversion
