"""Spectral clustering of Ng, Jordan and Weiss (2002), in torch, with seeded k-means.

PmSFC (Li et al. 2021) clusters a generator's feature channels with it, on the affinity
(|S| + |S^T|) / 2 of the learned self-expressive coefficients S.
"""

from __future__ import annotations

import torch


def _kmeans_plus_plus(points: torch.Tensor, count: int, rng: torch.Generator) -> torch.Tensor:
    """`count` initial centres: each next one drawn with probability ~ squared distance to
    the centres so far (Arthur and Vassilvitskii 2007)."""
    first = int(torch.randint(points.shape[0], (1,), generator=rng))
    centres = [points[first]]
    for _ in range(1, count):
        distance = torch.cdist(points, torch.stack(centres)).min(dim=1).values.square()
        if float(distance.sum()) <= 0:  # every point sits on a centre: any choice is as good
            distance = torch.ones_like(distance)
        centres.append(points[int(torch.multinomial(distance.cpu(), 1, generator=rng))])
    return torch.stack(centres)


def _fill_empty_clusters(
    points: torch.Tensor, centres: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Give each empty cluster the point farthest from its centre among clusters of two or
    more points, so that every cluster keeps at least one point."""
    labels = labels.clone()
    count = centres.shape[0]
    for cluster in range(count):
        if (labels == cluster).any():
            continue
        sizes = torch.bincount(labels, minlength=count)
        distance = (points - centres[labels]).square().sum(dim=1)
        distance[sizes[labels] < 2] = -1.0
        moved = int(distance.argmax())
        labels[moved] = cluster
        centres[cluster] = points[moved]
    return labels


def kmeans(
    points: torch.Tensor, count: int, rng: torch.Generator, iterations: int = 100
) -> tuple[torch.Tensor, float]:
    """Lloyd's k-means from a k-means++ start: labels (P,) with no empty cluster, and the
    inertia (sum of squared distances to the centres)."""
    centres = _kmeans_plus_plus(points, count, rng).clone()
    labels = torch.zeros(points.shape[0], dtype=torch.long, device=points.device)
    for _ in range(iterations):
        labels = _fill_empty_clusters(points, centres, torch.cdist(points, centres).argmin(dim=1))
        moved = torch.stack([points[labels == cluster].mean(dim=0) for cluster in range(count)])
        if torch.equal(moved, centres):
            break
        centres = moved
    inertia = float((points - centres[labels]).square().sum())
    return labels, inertia


def _first_seen_order(labels: torch.Tensor) -> torch.Tensor:
    """Labels renumbered in order of first appearance (0 for the first point's cluster)."""
    order: dict[int, int] = {}
    for label in labels.tolist():
        order.setdefault(label, len(order))
    return torch.tensor([order[label] for label in labels.tolist()], device=labels.device)


def spectral_clustering(
    affinity: torch.Tensor,
    num_clusters: int,
    seed: int = 0,
    restarts: int = 10,
    iterations: int = 100,
) -> torch.Tensor:
    """Cluster labels (P,) in 0..num_clusters-1, every cluster non-empty, of the P nodes of a
    symmetric non-negative affinity (P, P).

    Ng-Jordan-Weiss: the eigenvectors of the num_clusters smallest eigenvalues of the
    normalised Laplacian I - D^-1/2 A D^-1/2 (A with a zero diagonal) as columns, rows scaled
    to unit length, then k-means on the rows: the best of `restarts` seeded k-means++ runs.
    Labels are numbered in order of first appearance, so equal partitions give equal labels.
    """
    if affinity.ndim != 2 or affinity.shape[0] != affinity.shape[1]:
        raise ValueError(f"affinity must be a square matrix, got {tuple(affinity.shape)}")
    nodes = affinity.shape[0]
    if not 1 <= num_clusters <= nodes:
        raise ValueError(
            f"cannot split {nodes} nodes into {num_clusters} non-empty clusters; choose "
            f"num_subspaces in 1..{nodes}"
        )
    if restarts < 1:
        raise ValueError(f"restarts must be >= 1, got {restarts}")
    affinity = affinity.double()
    if (affinity < 0).any() or not torch.allclose(affinity, affinity.T):
        raise ValueError("the affinity must be symmetric and non-negative, e.g. (|S| + |S^T|)/2")
    affinity = affinity * (1 - torch.eye(nodes, dtype=affinity.dtype, device=affinity.device))
    # Isolated nodes (zero degree) get a tiny degree instead of a division by zero; their
    # rows of the embedding are zero and k-means puts them wherever is nearest.
    scale = affinity.sum(dim=1).clamp_min(1e-12).rsqrt()
    normalized = scale[:, None] * affinity * scale[None, :]
    # eigh sorts eigenvalues in ascending order: the largest of D^-1/2 A D^-1/2 are the
    # smallest of the Laplacian.
    embedding = torch.linalg.eigh(normalized).eigenvectors[:, -num_clusters:]
    embedding = embedding / embedding.norm(dim=1, keepdim=True).clamp_min(1e-12)
    rng = torch.Generator().manual_seed(seed)
    runs = [kmeans(embedding, num_clusters, rng, iterations) for _ in range(restarts)]
    labels, _ = min(runs, key=lambda run: run[1])
    return _first_seen_order(labels)
