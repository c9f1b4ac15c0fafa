"""Adversarial losses (non-saturating, hinge) and the R1 gradient penalty.

Under bf16/fp16 autocast D's logits come out in half precision, and softplus and the mean would
run in it too (a loss of 1.386 would log as 1.3828 or 1.3906), so the adversarial losses cast the
logits to float32 first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ADVERSARIAL_KINDS = ("non_saturating", "hinge")


def adversarial_kind_problem(key: str, kind: object) -> str | None:
    """Why `kind` cannot be the adversarial loss set at `key`, or None when it can: the one
    rule for it, which the recipes' loss configs report as config errors."""
    if kind in ADVERSARIAL_KINDS:
        return None
    allowed = ", ".join(ADVERSARIAL_KINDS)
    return f"{key}={kind!r}: unknown adversarial loss; allowed: {allowed}; set one of them"


def _check_kind(kind: str) -> None:
    problem = adversarial_kind_problem("kind", kind)
    if problem:
        raise ValueError(problem)


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "non_saturating"
) -> torch.Tensor:
    """Discriminator loss, minimised by D: real logits pushed up, fake logits pushed down."""
    _check_kind(kind)
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    """Generator loss, minimised by G and M: -log D(G(w)) or, for hinge, -D(G(w))."""
    _check_kind(kind)
    fake_logits = fake_logits.float()
    if kind == "hinge":
        return -fake_logits.mean()
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the squared gradient norm of D's real logits w.r.t. the input."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()
