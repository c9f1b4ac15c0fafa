"""The P space of Zhu et al. 2020 ("Improved StyleGAN Embedding: Where are the Good Latents?"),
also used by PULSE: w with the mapping network's last leaky ReLU undone.

StyleGAN's mapping ends in a leaky ReLU of slope 0.2 (times a constant gain), which squashes
the negative half-axis of each coordinate and makes the distribution of w far from Gaussian.
x = LeakyReLU_5(w) undoes it exactly: x is the last layer's pre-activation up to the gain,
an affine function of the previous features and close to Gaussian, so a Gaussian prior on x is
a reasonable regulariser. For mappings that do not end in a leaky ReLU (the MLP of the DCGAN
and BigGAN backbones) P is still an exact, invertible reparametrisation of W, only a less
Gaussian one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from invgan.nn.frozen_generator import FrozenGenerator

MAPPING_SLOPE = 0.2
# Eigenvalues below this fraction of the largest are floored when whitening, so that directions
# the mapping barely uses do not turn into huge penalties.
EIGENVALUE_FLOOR = 1e-6


def w_to_p(w: torch.Tensor) -> torch.Tensor:
    """x = LeakyReLU_{1/0.2}(w), elementwise."""
    return F.leaky_relu(w, 1.0 / MAPPING_SLOPE)


def p_to_w(x: torch.Tensor) -> torch.Tensor:
    """w = LeakyReLU_{0.2}(x), elementwise; inverse of `w_to_p`."""
    return F.leaky_relu(x, MAPPING_SLOPE)


class PNorm:
    """Squared whitened distance from the mean of P, with PCA whitening as in Zhu et al.

    Mean and covariance of x = w_to_p(M(z)) are estimated from seeded prior samples. The
    penalty of a code x is ||Lambda^{-1/2} C^T (x - mu)||^2 / w_dim (C, Lambda: eigenvectors
    and eigenvalues of the covariance), averaged over layers for per-layer codes, so a
    typical mapped sample scores about 1 whatever the latent size. PCA rather than a diagonal
    whitening because the coordinates of P are strongly correlated.
    """

    def __init__(self, mean: torch.Tensor, whitening: torch.Tensor) -> None:
        self.mean = mean
        self.whitening = whitening

    @classmethod
    @torch.no_grad()
    def estimate(
        cls, generator: FrozenGenerator, num_samples: int = 10_000, seed: int = 0
    ) -> PNorm:
        """Statistics of P from `num_samples` mapped prior samples (seeded)."""
        if num_samples < 2:
            raise ValueError(f"num_samples must be >= 2, got {num_samples}")
        rng = torch.Generator().manual_seed(seed)
        device = generator.latent_avg.device
        samples = []
        for start in range(0, num_samples, 1024):
            z = torch.randn(min(1024, num_samples - start), generator.z_dim, generator=rng)
            samples.append(w_to_p(generator.map(z.to(device))).double())
        x = torch.cat(samples)
        mean = x.mean(dim=0)
        eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(x.T))
        eigenvalues = eigenvalues.clamp_min(EIGENVALUE_FLOOR * eigenvalues.max())
        whitening = eigenvectors.T / eigenvalues.sqrt().unsqueeze(1)
        return cls(mean.float(), whitening.float())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Per-image penalty (N,) of codes x in P, (N, w_dim) or per layer (N, L, w_dim)."""
        whitened = (x - self.mean) @ self.whitening.T
        return whitened.square().flatten(1).mean(dim=1)
