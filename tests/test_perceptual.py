"""LPIPS perceptual distance from the shared offline weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from datamodules.image_files import image_to_tensor, read_image, resize_center_crop
from invgan.losses.perceptual import PerceptualDistance
from invgan.metrics.perceptual import PerceptualDistanceAccumulator
from tests.conftest import SHARED_DATA, SHARED_DIR

WEIGHTS = SHARED_DIR / "weights"


def _faces(count: int, size: int = 64) -> torch.Tensor:
    files = sorted((SHARED_DATA / "faces").iterdir())[:count]
    images = [image_to_tensor(resize_center_crop(read_image(f, 3), size)) for f in files]
    return torch.stack(images) * 2 - 1


def _blurred(images: torch.Tensor) -> torch.Tensor:
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    kernel = (kernel[:, None] * kernel[None, :]) / 256
    kernel = kernel.expand(3, 1, 5, 5)
    return F.conv2d(F.pad(images, (2, 2, 2, 2), mode="reflect"), kernel, groups=3)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_orders_real_image_pairs_sensibly(net):
    distance = PerceptualDistance(net, WEIGHTS / f"lpips_{net}_full.pth")
    faces = _faces(8, size=128)
    same = distance(faces, faces)
    blurred = distance(faces, _blurred(faces))
    different = distance(faces, faces.roll(1, dims=0))
    assert same.shape == (8,) and same.abs().max() < 1e-6
    # A slightly blurred copy is closer than another face, for every image.
    assert (blurred < different).all()


def test_lpips_is_frozen_but_passes_gradients_to_inputs():
    distance = PerceptualDistance("alex", WEIGHTS / "lpips_alex_full.pth", resize=32)
    distance.train()
    assert not distance.training
    faces = _faces(2, size=16)
    target = faces.clone().requires_grad_()
    distance(faces.roll(1, dims=0), target).sum().backward()
    assert target.grad.abs().sum() > 0
    assert all(p.grad is None for p in distance.parameters())


def test_accumulated_mean_does_not_depend_on_batching():
    distance = PerceptualDistance("alex", WEIGHTS / "lpips_alex_full.pth")
    faces = _faces(6, size=32)
    others = faces.flip(0)
    whole = PerceptualDistanceAccumulator(distance)
    whole.update(faces, others)
    split = PerceptualDistanceAccumulator(distance)
    for start in (0, 2, 5):
        stop = {0: 2, 2: 5, 5: 6}[start]
        split.update(faces[start:stop], others[start:stop])
    assert split.count == whole.count == 6
    assert split.compute() == pytest.approx(whole.compute(), rel=1e-5)
    assert whole.compute() == pytest.approx(float(distance(faces, others).mean()), rel=1e-5)


def test_missing_weights_file_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        PerceptualDistance("vgg", tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="choose one of"):
        PerceptualDistance("squeeze")
