"""ReStyle's iterative inversion (Alaluf et al., ICCV 2021) with a chosen number of steps.

A ReStyle run (`invgan.modules.restyle`) refines W+ codes from the average latent,
w_{t+1} = w_t + E(concat(x, G(w_t))); this method runs `iterations` of those steps, so one
checkpoint is evaluated at several step counts (the InvGAN paper's Table 3 at 1-4) with
`evaluate.py ckpt_path=<restyle run> inversion=restyle inversion.iterations=N`.
"""

from __future__ import annotations

import torch

from invgan.inversion.encoder import EncoderInversion
from invgan.inversion.protocols import GenerativeModel, IterativeEncoder
from invgan.modules.restyle import check_iterations
from invgan.utils.config_checks import ConfigValueError


class ReStyleInversion(EncoderInversion):
    """N refinement steps of a ReStyle encoder (`inversion.iterations`); `encode_steps` and
    `reconstruct_steps` return every step's codes and images."""

    def __init__(self, model: GenerativeModel, iterations: int = 5) -> None:
        if not isinstance(model, IterativeEncoder):
            raise ConfigValueError(
                f"inversion=restyle needs a ReStyle run (train.py experiment=celeba_restyle); "
                f"this model ({type(model).__name__}) has no iterative encoder: use "
                "inversion=encoder for its own inversion"
            )
        super().__init__(model)
        self.encoder: IterativeEncoder = model
        self.iterations = check_iterations("inversion.iterations", iterations)

    def encode_steps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """W+ codes after each of the `iterations` steps."""
        return self.encoder.encode_iterations(images, self.iterations)

    def reconstruct_steps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """G(w_1) .. G(w_N): the reconstruction after each step."""
        return [self.decode(codes) for codes in self.encode_steps(images)]

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """w_N: the codes after `iterations` steps."""
        return self.encode_steps(images)[-1]
