"""Assignments between features and pooled vectors: k-means (B16)-(B20) and Sinkhorn (B13)-(B14).

Pure functions over tokens ``(B, N, C)``; the framework, ``kmeans`` and ``otk`` pools call them.
Attention matrices are ``(B, k, N)``: the paper's ``A in R^{p x k}`` transposed, one row per vector.
"""

from __future__ import annotations

import torch

from .noise import seeded_uniform


def normalize_locations(weights: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Column normalisation ``eta_2`` of the paper: each vector's weights sum to 1 over locations, ``(..., N)``."""
    return weights / weights.sum(dim=-1, keepdim=True).clamp_min(eps)


def squared_distances(vectors: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``d_ij = ||u_j - x_i||^2`` as ``(B, k, N)`` from vectors ``(B, k, C)`` and tokens ``(B, N, C)``."""
    return torch.cdist(vectors, tokens).square()  # (B, k, N)


def hard_assignment(similarity: torch.Tensor) -> torch.Tensor:
    """``eta_2(argmax_1(S))`` of (B20): each location goes to its most similar vector, ties to the lowest index.

    Args:
        similarity: ``(..., k, N)`` scores.

    Returns:
        ``(..., k, N)`` weights: a vector's assigned locations share its weight equally; an empty
        vector has all-zero weights.
    """
    k = similarity.shape[-2]
    winner = similarity.argmax(dim=-2)  # (..., N): first maximum, so ties go to the lowest index
    one_hot = torch.nn.functional.one_hot(winner, k).movedim(-1, -2).to(similarity.dtype)  # (..., k, N)
    return normalize_locations(one_hot)


def kmeans(
    tokens: torch.Tensor,
    k: int,
    iterations: int = 5,
    tolerance: float = 0.01,
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means per image, as pooling: ``U^{t+1} = X eta_2(argmax_1(-D))`` (B17)-(B20).

    ``U^0`` takes ``k`` distinct features of each image at random (with repetition when ``N < k``).
    An image stops updating once its centroids moved by less than ``tolerance`` relative to their
    norm; the loop always runs ``iterations`` steps (T = 5 in Appendix C.2), with the convergence kept
    as a tensor, so there is no host synchronisation and ``torch.compile`` makes one graph. An image's
    result never depends on when the rest of the batch converges. A centroid left without features
    keeps its previous value and weights, so ``U = X A`` holds at every step and the gradient reaches
    the features through it. With ``k = 1`` the result is the average of the features, GAP (eq. 11).

    Args:
        tokens: features ``(B, N, C)``.
        k: number of centroids.
        iterations: number ``T`` of updates.
        tolerance: relative centroid shift that counts as converged.
        generator: random source of the initial choice (drawn on its device, then moved to the tokens').
        seed: instead of a generator, seeded noise drawn on the tokens' device, the same on every
            device and inside ``torch.compile`` (:func:`~simpool.pooling.noise.seeded_uniform`).

    Returns:
        ``(centroids, attention)``: ``(B, k, C)`` and ``(B, k, N)`` with rows summing to 1.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    B, N, C = tokens.shape  # batch, locations, channels
    device = tokens.device
    shape = (B, N) if N >= k else (B, k)
    if seed is not None:
        noise = seeded_uniform(shape, seed, device)
    else:
        noise = torch.rand(shape, generator=generator, device=generator.device if generator else device).to(device)
    if N >= k:
        index = noise.argsort(dim=1)[:, :k]  # (B, N) -> (B, k) distinct locations
    else:
        index = (noise * N).long().clamp_max(N - 1)  # (B, k) locations, with repetition
    attention = torch.nn.functional.one_hot(index, N).to(tokens.dtype)  # (B, k, N)
    centroids = torch.bmm(attention, tokens)  # (B, k, N) x (B, N, C) -> (B, k, C)
    converged = torch.zeros(B, 1, 1, dtype=torch.bool, device=device)  # (B, 1, 1)
    for _ in range(iterations):
        with torch.no_grad():
            assigned = hard_assignment(-squared_distances(centroids, tokens))  # (B, k, N)
            empty = assigned.sum(dim=-1, keepdim=True) == 0  # (B, k, 1)
            attention = torch.where(empty | converged, attention, assigned)  # (B, k, N)
        previous = centroids
        centroids = torch.bmm(attention, tokens)  # (B, k, C); unchanged for a converged image
        with torch.no_grad():
            shift = (centroids - previous).flatten(1).norm(dim=1) / previous.flatten(1).norm(dim=1).clamp_min(1e-12)
            converged = converged | (shift < tolerance).view(B, 1, 1)  # (B, 1, 1)
    return centroids, attention


def sinkhorn(log_kernel: torch.Tensor, iterations: int = 3) -> torch.Tensor:
    """Sinkhorn-Knopp in the log domain: the transport plan ``P`` of (B13)-(B14) from ``log K = -C / eps``.

    Alternately rescales so that each location's mass is ``1/N`` and each vector's mass is ``1/k``
    (the uniform marginals of (B13)); the last step fixes the vectors' marginals exactly.

    Args:
        log_kernel: ``(B, k, N)`` logits ``S / eps`` (``-C / eps`` for a cost ``C``).
        iterations: rescaling rounds.

    Returns:
        ``(B, k, N)`` plan ``P`` (transposed from the paper's ``p x k``): rows sum to ``1/k``,
        columns to about ``1/N``.
    """
    B, k, N = log_kernel.shape  # batch, vectors, locations
    log_plan = log_kernel
    for _ in range(iterations):
        log_plan = log_plan - log_plan.logsumexp(dim=1, keepdim=True) - torch.log(log_plan.new_tensor(float(N)))
        log_plan = log_plan - log_plan.logsumexp(dim=2, keepdim=True) - torch.log(log_plan.new_tensor(float(k)))
    return log_plan.exp()
