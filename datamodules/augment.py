"""Training-time augmentation of [0, 1] image tensors; validation and test never use it.

Random draws use torch's global generator, which DataLoader seeds differently in each worker,
so workers do not repeat one another's augmentations.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def random_hflip(image: torch.Tensor) -> torch.Tensor:
    """Mirror left-right with probability 1/2."""
    return image.flip(-1) if torch.rand(()) < 0.5 else image


def random_translate(image: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Shift (C, H, W) by whole pixels, up to ``max_shift`` each way per axis, uncovered pixels
    filled by reflecting the image (so no border appears that the data never has)."""
    if max_shift == 0:
        return image
    dy, dx = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,)))
    m = max_shift
    padded = F.pad(image.unsqueeze(0), (m, m, m, m), mode="reflect").squeeze(0)
    height, width = image.shape[-2:]
    return padded[:, m - dy : m - dy + height, m - dx : m - dx + width]


@dataclass(frozen=True)
class Augmentation:
    """The training augmentation from config: random flips and random translation."""

    hflip: bool = False
    translate: int = 0

    def __post_init__(self) -> None:
        if self.translate < 0:
            raise ValueError(f"data.translate must be >= 0 pixels, got {self.translate}")

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Augment one (C, H, W) image."""
        if self.hflip:
            image = random_hflip(image)
        return random_translate(image, self.translate)
