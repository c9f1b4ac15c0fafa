"""What the parts of the library promise each other about models and inversion methods.

A *model* is what a run or a file gives: an InvGAN module (its discriminator's latent head
inverts), an encoder recipe (pSp, e4e, ReStyle, in-domain) or a bare pretrained generator. An
*inversion method* (`conf/inversion/`) is built with a model and is the only thing evaluation,
the applications, the directions and the studio talk to when they invert. Consumers are typed
against these protocols, never against concrete classes, so a new model or method only has to
offer these members (checked by mypy in CI).

Every protocol is runtime-checkable: whether a model or method has an optional ability (an
encoder, Z codes, subspaces) is asked with `isinstance` on the protocol, never by testing its
concrete class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch

from invgan.nn.frozen_generator import FrozenGenerator

if TYPE_CHECKING:  # multi_code imports these protocols
    from invgan.inversion.multi_code import MultiCodes


@runtime_checkable
class Invertible(Protocol):
    """Anything that maps images in [-1, 1] to codes and back (tiled inversion needs no more)."""

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Codes (N, ...) of images (N, C, H, W) in [-1, 1]."""
        ...

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [-1, 1] from codes."""
        ...


@runtime_checkable
class GenerativeModel(Protocol):
    """A generator with a prior: decodes codes, draws random images, and hands out the frozen
    generator (mapping network, synthesis, average latent) that its codes belong to."""

    @property
    def device(self) -> torch.device:
        """Where the model's weights are."""
        ...

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from codes (w or W+, as the model's latent space is)."""
        ...

    def sample(self, count: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """`count` random images G(M(z)) in [-1, 1] (`generator` seeds z; keyword only, as
        InvGAN's `sample` takes the network set second)."""
        ...

    def frozen_generator(self) -> FrozenGenerator:
        """The generator codes are found for (optimisation-based methods invert it)."""
        ...


@runtime_checkable
class InvertibleModel(GenerativeModel, Invertible, Protocol):
    """A generative model that also inverts in one pass (an encoder or a latent head)."""

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """decode(encode(x)) with networks of one set."""
        ...


@runtime_checkable
class IterativeEncoder(InvertibleModel, Protocol):
    """An invertible model whose encoder refines its codes step by step (ReStyle)."""

    def encode_iterations(self, images: torch.Tensor, iterations: int) -> list[torch.Tensor]:
        """Codes after each of `iterations` refinement steps of images in [-1, 1]."""
        ...


@runtime_checkable
class InversionMethod(Invertible, Protocol):
    """An inversion method built from `conf/inversion/` with the model it inverts."""

    @property
    def model(self) -> GenerativeModel:
        """The model whose generator the codes belong to."""
        ...

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """The method's best reconstruction (optimisation adds its fitted noise maps)."""
        ...

    def frozen_generator(self) -> FrozenGenerator:
        """The generator `decode` uses: the model's, or the method's own (PTI's tuned copy);
        edits of the method's codes decode with it."""
        ...


@runtime_checkable
class MaskedInversion(InversionMethod, Protocol):
    """A method that can also fit the known pixels of images only (inpainting)."""

    def encode_masked(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Codes fitted to the pixels where `mask` (N, 1, H, W) is 1, ignoring the others."""
        ...


@runtime_checkable
class PriorInversion(InversionMethod, Protocol):
    """A method that may find each image's prior sample z (optimisation in Z), which edits
    in Z such as spherical interpolation need: the mapping network has no inverse."""

    def prior_samples(self, images: torch.Tensor) -> torch.Tensor | None:
        """z (N, z_dim) whose mapped codes reconstruct the images, or None when this method's
        configuration does not search Z (checked before any work)."""
        ...


@runtime_checkable
class SubspaceInversion(InversionMethod, Protocol):
    """A multi-code method whose feature channels fall into discovered subspaces (PmSFC):
    what the subspace-swap application needs."""

    @property
    def layer(self) -> int:
        """The split layer l: the codes' G1_l features are composed, G2_l makes the image."""
        ...

    @property
    def subspace_labels(self) -> torch.Tensor:
        """The subspace (0..R-1) of each of the C composed feature channels, (C,)."""
        ...

    def invert(self, images: torch.Tensor) -> MultiCodes:
        """The optimised codes, weights and G2 codes of images in [-1, 1]."""
        ...

    def composed_features(self, codes: MultiCodes) -> torch.Tensor:
        """The composed G1 features (N, C, H, W) of the codes."""
        ...

    def synthesize_features(self, features: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1]: G2 of features (N, C, H, W) styled by W+ codes `tail`."""
        ...

    def pack(self, codes: MultiCodes) -> torch.Tensor:
        """The codes as rows (N, P), as `encode` returns them."""
        ...
