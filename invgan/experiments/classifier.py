"""The semantic-consistency classifier: a torchvision ResNet trained from scratch (no weights
are downloaded) on uint8 images, one output per class or attribute.

The paper (Section 4.1) trains a ResNet-50 for 20 epochs, a separate one per CelebA attribute.
Here one network has an output per attribute (sigmoid, binary cross-entropy) or per class
(softmax, cross-entropy): the same features serve every attribute, at 1/20th of the cost; the
paper names no optimiser, learning rate or input size, so they are settings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from invgan.utils.config_checks import ConfigValueError, check_arguments

log = logging.getLogger(__name__)

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "resnet18": torchvision.models.resnet18,
    "resnet50": torchvision.models.resnet50,
}


@dataclass(frozen=True)
class ClassifierSettings:
    """The classifier and its training (`classifier.*` in conf/semantic_consistency.yaml)."""

    architecture: Literal["resnet18", "resnet50"] = "resnet18"
    epochs: int = 20
    batch_size: int = 64
    # Side the images are resized to before the network (bilinear); null keeps their size.
    image_size: int | None = None
    optimizer: Callable[..., torch.optim.Optimizer] = partial(torch.optim.Adam, lr=1e-3)

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "optimizer"}
        check_arguments("classifier", type(self), values)
        if self.epochs < 1:
            raise ConfigValueError(f"classifier.epochs={self.epochs}: must be an integer >= 1")


def build_classifier(architecture: str, num_outputs: int) -> nn.Module:
    """A randomly initialised torchvision ResNet with `num_outputs` logits."""
    return ARCHITECTURES[architecture](weights=None, num_classes=num_outputs)


def network_input(images: torch.Tensor, image_size: int | None) -> torch.Tensor:
    """uint8 images as the network's float input in [-1, 1], resized, with three channels
    (grayscale repeated) as torchvision's ResNets take."""
    images = images.float().div(127.5).sub(1.0)
    if image_size is not None and images.shape[-1] != image_size:
        size = (image_size, image_size)
        images = F.interpolate(images, size=size, mode="bilinear", antialias=True)
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def classification_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for class indices (N,), binary cross-entropy for 0 / 1 attributes (N, K)."""
    if targets.ndim == 1:
        return F.cross_entropy(logits, targets)
    return F.binary_cross_entropy_with_logits(logits, targets.float())


def train_classifier(
    images: torch.Tensor,
    targets: torch.Tensor,
    num_outputs: int,
    settings: ClassifierSettings,
    seed: int,
    device: torch.device,
) -> nn.Module:
    """A classifier trained on uint8 `images` (N, C, H, W) and their `targets`.

    The initial weights and the order of the batches depend on `seed` only, so two
    classifiers given the same seed differ only through the images they are trained on.
    """
    torch.manual_seed(seed)
    model = build_classifier(settings.architecture, num_outputs).to(device)
    optimizer = settings.optimizer(model.parameters())
    order_rng = torch.Generator().manual_seed(seed)
    model.train()
    for epoch in range(settings.epochs):
        order = torch.randperm(len(images), generator=order_rng)
        total = torch.zeros((), device=device)
        for chunk in order.split(settings.batch_size):
            if len(chunk) < 2:  # batch norm cannot normalise a single image
                continue
            inputs = network_input(images[chunk].to(device), settings.image_size)
            loss = classification_loss(model(inputs), targets[chunk].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(chunk)
        # One read per epoch for the log.
        log.info("classifier epoch %d: loss %.4f", epoch + 1, float(total) / len(images))
    return model.eval()


@torch.no_grad()
def class_scores(
    model: nn.Module, images: torch.Tensor, multilabel: bool, settings: ClassifierSettings
) -> torch.Tensor:
    """Scores (N, K) on the CPU: class probabilities (softmax), or one probability per
    attribute (sigmoid) for multi-label targets."""
    device = next(model.parameters()).device
    scores = []
    for chunk in images.split(settings.batch_size):
        logits = model(network_input(chunk.to(device), settings.image_size))
        scores.append((logits.sigmoid() if multilabel else logits.softmax(1)).cpu())
    return torch.cat(scores)
