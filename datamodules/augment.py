"""Training-time augmentation of [0, 1] image tensors; validation and test never use it."""

import torch


def random_hflip(image: torch.Tensor) -> torch.Tensor:
    """Mirror left-right with probability 1/2.

    Draws from torch's global generator, which DataLoader seeds differently in each worker, so
    workers do not repeat one another's flips.
    """
    return image.flip(-1) if torch.rand(()) < 0.5 else image
