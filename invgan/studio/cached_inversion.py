"""An inversion method that remembers each image's code, so that the studio inverts an image
once per method and every later edit of it (each slider move) only decodes."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict

import torch

from invgan.inversion.protocols import GenerativeModel, InversionMethod
from invgan.nn.frozen_generator import FrozenGenerator


def image_key(image: torch.Tensor) -> str:
    """A digest of one image's values and shape: equal images share a code."""
    data = image.detach().to("cpu", torch.float32).contiguous()
    digest = hashlib.sha256(data.numpy().tobytes())
    digest.update(str(tuple(data.shape)).encode())
    return digest.hexdigest()


class CachedInversion:
    """The inversion method interface (`encode`, `decode`, `reconstruct`) around `method`,
    with the codes of the last `capacity` images kept. `seconds[key]` is how long inverting
    that image took the first time (a cached code costs nothing, which is not news)."""

    def __init__(self, method: InversionMethod, capacity: int = 64) -> None:
        if capacity < 1:
            raise ValueError(f"the code cache needs capacity >= 1, got {capacity}")
        self.method = method
        self.model: GenerativeModel = method.model
        # Built once: InvGAN's frozen_generator() copies the networks and re-estimates the
        # mean code on every call, which would dominate each slider move. The copy is
        # deterministic (seeded mean code), so it equals the one the apply command builds.
        self.generator = method.frozen_generator()
        self.capacity = capacity
        self._codes: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def cached(self, images: torch.Tensor) -> bool:
        """Whether every image already has a code."""
        with self._lock:
            return all(image_key(image) in self._codes for image in images)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Codes of images in [-1, 1]: remembered ones, the others inverted together."""
        keys = [image_key(image) for image in images]
        with self._lock:
            missing = [k for k, key in enumerate(keys) if key not in self._codes]
        if missing:
            start = time.perf_counter()
            codes = self.method.encode(images[missing]).detach()
            seconds = (time.perf_counter() - start) / len(missing)
            with self._lock:
                for row, k in enumerate(missing):
                    self._codes[keys[k]] = codes[row]
                    self.seconds[keys[k]] = seconds
        with self._lock:
            found = []
            for key in keys:
                self._codes.move_to_end(key)
                found.append(self._codes[key])
            while len(self._codes) > self.capacity:
                old, _ = self._codes.popitem(last=False)
                self.seconds.pop(old, None)
        return torch.stack(found)

    def frozen_generator(self) -> FrozenGenerator:
        """The wrapped method's generator, built once."""
        return self.generator

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from codes, as the wrapped method decodes them."""
        return self.method.decode(codes)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """decode(encode(images))."""
        return self.decode(self.encode(images))
