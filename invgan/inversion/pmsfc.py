"""PmSFC (Li et al., AAAI 2021): multi-code inversion with the codes' features composed within
subspaces of G1_l's channels discovered in the generator itself.

Subspace discovery (Algorithm 1): learn the self-expressive coefficients S over prior samples
(`invgan.inversion.self_expressive`), cluster the channels by spectral clustering of the
affinity (|S| + |S^T|) / 2 into R subspaces (`invgan.inversion.spectral_clustering`).
Inversion: K codes per subspace, composed within it with normalised tanh weights and put back
in channel order (Eq. 7-8, `feature_composition.SubspaceComposition`), fitted with pixel MSE +
LPIPS (Eq. 9) exactly as mGANprior (`invgan.inversion.multi_code`).

Discovery depends only on the generator, the layer, R and its own options, so its result is
cached in `cache_dir` under a key of all of them (the generator by a hash of its weights) and
later inversions with the same generator reuse it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch

from invgan.checkpoints.atomic import atomic_write
from invgan.checkpoints.safe_load import safe_torch_load
from invgan.inversion.feature_composition import SubspaceComposition
from invgan.inversion.multi_code import MultiCodeInversion
from invgan.inversion.protocols import GenerativeModel
from invgan.inversion.self_expressive import learn_self_expression
from invgan.inversion.spectral_clustering import spectral_clustering
from invgan.nn.frozen_generator import FrozenGenerator

log = logging.getLogger(__name__)


class Subspaces(NamedTuple):
    """Discovered subspaces: channel labels (C,) in 0..R-1 and the coefficients S (C, C)."""

    labels: torch.Tensor
    coefficients: torch.Tensor


def generator_fingerprint(generator: FrozenGenerator) -> str:
    """SHA-256 of the generator's and mapping's weights (not the sampled `latent_avg`)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(generator.state_dict().items()):
        if name == "latent_avg":
            continue
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def discover_subspaces(
    generator: FrozenGenerator,
    layer: int,
    num_subspaces: int,
    discovery: Mapping[str, Any] | None = None,
    clustering_seed: int = 0,
) -> Subspaces:
    """Algorithm 1: S from `learn_self_expression(**discovery)`, then spectral clustering of
    (|S| + |S^T|) / 2 into `num_subspaces` groups of channels."""
    coefficients = learn_self_expression(generator, layer, **(discovery or {}))
    affinity = (coefficients.abs() + coefficients.abs().T) / 2
    labels = spectral_clustering(affinity, num_subspaces, seed=clustering_seed)
    return Subspaces(labels.cpu(), coefficients.cpu())


def cached_subspaces(
    generator: FrozenGenerator,
    layer: int,
    num_subspaces: int,
    discovery: Mapping[str, Any] | None = None,
    cache_dir: str | Path | None = None,
) -> Subspaces:
    """`discover_subspaces`, read from / written to `cache_dir` (None: never cached)."""
    discovery = dict(discovery or {})
    if cache_dir is None:
        return discover_subspaces(generator, layer, num_subspaces, discovery)
    settings = {"layer": layer, "num_subspaces": num_subspaces, "discovery": discovery}
    key = hashlib.sha256(
        (generator_fingerprint(generator) + json.dumps(settings, sort_keys=True)).encode()
    ).hexdigest()[:16]
    path = Path(cache_dir) / f"subspaces_layer{layer}_r{num_subspaces}_{key}.pt"
    if path.is_file():
        stored = safe_torch_load(path)
        log.info("PmSFC subspaces read from %s", path)
        return Subspaces(stored["labels"], stored["coefficients"])
    start = time.perf_counter()
    subspaces = discover_subspaces(generator, layer, num_subspaces, discovery)
    atomic_write(path, lambda file: torch.save({**subspaces._asdict(), **settings}, file))
    sizes = torch.bincount(subspaces.labels, minlength=num_subspaces).tolist()
    log.info(
        "PmSFC subspaces of layer %d discovered in %.1f s (channels per subspace %s), cached "
        "in %s",
        layer,
        time.perf_counter() - start,
        sizes,
        path,
    )
    return subspaces


class PmSFCInversion(MultiCodeInversion):
    """Inversion method by prior multi-subspace feature composition.

    `num_subspaces` is R, `num_codes` is K, the codes of each subspace (R K codes per image,
    code r K + k being z^r_k); `discovery` holds `learn_self_expression`'s options (steps,
    batch_size, lr, data_weight = lambda, sparsity_weight = mu, seed); `cache_dir` keeps the
    discovered subspaces (null: discover them each time); `initial_weight` is every weight's
    start (see `SubspaceComposition.initial_weights`). The other options are
    `MultiCodeInversion`'s. Packed codes: as for mGANprior, with the weights before tanh.
    """

    composition: SubspaceComposition  # what `build_composition` below returns

    def __init__(
        self,
        model: GenerativeModel,
        num_subspaces: int = 4,
        discovery: Mapping[str, Any] | None = None,
        cache_dir: str | Path | None = None,
        initial_weight: float = 0.25,
        **options: Any,
    ) -> None:
        if num_subspaces < 1:
            raise ValueError(f"num_subspaces must be >= 1, got {num_subspaces}")
        self.num_subspaces = num_subspaces
        self.discovery = dict(discovery or {})
        self.cache_dir = cache_dir
        self.initial_weight = initial_weight
        self.subspaces: Subspaces | None = None
        super().__init__(model, **options)

    @property
    def total_codes(self) -> int:
        """Codes per image, R K."""
        return self.num_subspaces * self.num_codes

    @property
    def subspace_labels(self) -> torch.Tensor:
        """The subspace (0..R-1) of each of G1_l's C channels, (C,)."""
        return self.composition.labels

    def build_composition(self) -> SubspaceComposition:
        """Eq. 7-8 over the generator's discovered (or cached) subspaces."""
        with torch.inference_mode(False):
            self.subspaces = cached_subspaces(
                self.generator, self.layer, self.num_subspaces, self.discovery, self.cache_dir
            )
        return SubspaceComposition(self.subspaces.labels, self.num_codes, self.initial_weight)
