"""A linear boundary between two classes of latent codes, and conditional directions
(InterFaceGAN, Shen et al. 2020, Sections 2.2-2.3).

InterFaceGAN fits a linear SVM; we fit L2-regularised logistic regression instead, full batch
with L-BFGS in float64: the objective is smooth and strictly convex, so the optimum is unique
and found without tuning a learning rate or a number of epochs, and the L2 term keeps the
normal finite when the codes are separable (where the logistic loss alone has no minimum).
Both give a separating hyperplane whose unit normal is the editing direction. The loss is
averaged per class, so a rare attribute (one digit of ten) weighs as much as the rest.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class LinearBoundary(NamedTuple):
    """The hyperplane <normal, x> + bias = 0; `normal` is a unit vector towards the positive
    class (positive side: <normal, x> + bias > 0)."""

    normal: torch.Tensor
    bias: float

    def predict(self, codes: torch.Tensor) -> torch.Tensor:
        """True where codes (N, D) lie on the positive side."""
        return codes.double() @ self.normal.double() + self.bias > 0


def _class_weights(labels: torch.Tensor) -> torch.Tensor:
    """Per-example weights that give each class half of the total."""
    positives = labels.sum()
    negatives = labels.numel() - positives
    if positives == 0 or negatives == 0:
        raise ValueError("a linear boundary needs examples of both classes")
    return torch.where(labels, 0.5 / positives, 0.5 / negatives).double()


def fit_linear_boundary(
    codes: torch.Tensor, labels: torch.Tensor, l2: float = 1e-3, max_iter: int = 500
) -> LinearBoundary:
    """Class-balanced logistic regression with penalty (l2 / 2) ||v||^2 on codes (N, D) and
    boolean labels (N,); returns the boundary with its normal v / ||v||."""
    if l2 <= 0:
        raise ValueError(f"l2 must be positive (it keeps the normal finite), got {l2}")
    x = codes.detach().flatten(1).double().cpu()
    y = labels.bool().cpu()
    weights = _class_weights(y)
    # Centred codes: the bias then starts near its optimum and the problem is well scaled.
    mean = x.mean(dim=0)
    x = x - mean
    v = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [v, b], max_iter=max_iter, tolerance_grad=1e-10, line_search_fn="strong_wolfe"
    )
    targets = y.double()

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        losses = F.binary_cross_entropy_with_logits(x @ v + b, targets, reduction="none")
        loss = (weights * losses).sum() + 0.5 * l2 * v.square().sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    norm = v.detach().norm()
    if norm == 0:
        raise ValueError("the fitted boundary has a zero normal: the classes are not separable")
    normal = v.detach() / norm
    # <v, x - mean> + b = 0  <=>  <normal, x> + (b - <v, mean>) / ||v|| = 0
    bias = float((b.detach() - v.detach() @ mean) / norm)
    return LinearBoundary(normal.to(codes.dtype), bias)


def accuracy(boundary: LinearBoundary, codes: torch.Tensor, labels: torch.Tensor) -> dict:
    """Accuracy and balanced accuracy (mean of the per-class recalls; 0.5 is chance whatever
    the class sizes) of the boundary on codes (N, D) with boolean labels (N,)."""
    predicted = boundary.predict(codes.flatten(1).cpu())
    labels = labels.bool().cpu()
    recalls = [float((predicted[labels == cls] == cls).double().mean()) for cls in (True, False)]
    return {
        "accuracy": float((predicted == labels).double().mean()),
        "balanced_accuracy": sum(recalls) / 2,
        "count": int(labels.numel()),
    }


def project_out(direction: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
    """Conditional manipulation: the unit direction orthogonal to every condition direction
    (rows of (m, D)), n - C^T (C C^T)^-1 C n normalised, so moving along it leaves the
    conditions' attributes as they are (to first order)."""
    n = direction.flatten().double()
    basis, _ = torch.linalg.qr(conditions.flatten(1).double().T)  # orthonormal span, (D, m)
    projected = n - basis @ (basis.T @ n)
    norm = projected.norm()
    if norm < 1e-6 * n.norm():
        raise ValueError(
            "the direction lies in the span of the condition directions: nothing is left "
            "after projecting them out (the attributes are the same one)"
        )
    return (projected / norm).reshape(direction.shape).to(direction.dtype)
