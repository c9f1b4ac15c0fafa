"""The self-expressive layer of PmSFC (Li et al. 2021, Eq. 4-6): every feature channel of G1_l
written as a linear combination of the other channels, learned over prior samples.

With F(z) the (H W, C) matrix whose columns are G1_l(z)'s flattened channels, S (C, C)
minimises L_recF + lambda L_recD + mu ||S||_1 subject to diag(S) = 0, where
L_recF = E ||F(z) - F(z) S||^2 and L_recD = E ||G2(G1(z)) - G2(T(F(z) S))||^2 (T un-flattens).
"""

from __future__ import annotations

import torch
from torch import nn

from invgan.inversion.adam_descent import adam_descent
from invgan.nn.frozen_generator import FrozenGenerator


class SelfExpressiveLayer(nn.Module):
    """Features (N, C, H, W) -> F S, a C x C map without bias or non-linearity.

    S = weight * (1 - I): the diagonal is zero by construction (the trivial S = I is out of
    reach) rather than by a penalty. State dict: `weight` (C, C), `off_diagonal` (C, C).
    """

    off_diagonal: torch.Tensor  # a buffer

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels, channels))
        self.register_buffer("off_diagonal", 1 - torch.eye(channels))

    @property
    def coefficients(self) -> torch.Tensor:
        """S (C, C): column d holds the weights of the channels that express channel d."""
        return self.weight * self.off_diagonal

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Channel d of the output is sum_c S[c, d] * channel c of the input."""
        return torch.einsum("nchw,cd->ndhw", features, self.coefficients)


def learn_self_expression(
    generator: FrozenGenerator,
    layer: int,
    steps: int = 500,
    batch_size: int = 16,
    lr: float = 0.01,
    data_weight: float = 1.0,
    sparsity_weight: float = 0.1,
    seed: int = 0,
) -> torch.Tensor:
    """S (C, C) with a zero diagonal for G1_layer's channels (Eq. 6).

    Each step draws `batch_size` fresh prior samples (seeded), so the expectations of Eq. 4-5
    are over the prior; the squared norms and ||S||_1 are means over their elements (as in the
    authors' code, so that mu does not scale with C^2), weighted by `data_weight` (lambda)
    and `sparsity_weight` (mu). Each sample's G2 is styled by its own code, so
    G2(G1(z)) = G(z).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rng = torch.Generator().manual_seed(seed)
    device = generator.latent_avg.device
    with torch.no_grad():
        channels = generator.features(generator.latent_avg[None], layer).shape[1]
    expressive = SelfExpressiveLayer(channels).to(device)

    def loss(step: int) -> torch.Tensor:
        with torch.no_grad():
            z = torch.randn(batch_size, generator.z_dim, generator=rng).to(device)
            codes = generator.map(z)
            features = generator.features(codes, layer)
            images = generator.synthesize_from(features, codes, layer)
        expressed = expressive(features)
        feature_error = (features - expressed).square().mean()
        image_error = (generator.synthesize_from(expressed, codes, layer) - images).square().mean()
        sparsity = expressive.coefficients.abs().mean()
        return feature_error + data_weight * image_error + sparsity_weight * sparsity

    with torch.inference_mode(False), torch.enable_grad():
        adam_descent([expressive.weight], loss, steps, lr, lr_rampup=0.0)
    return expressive.coefficients.detach()
