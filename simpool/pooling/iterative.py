"""Group 2 of Table 1: iterative methods with k > 1 vectors (Appendix B.3).

Each returns ``(B, k, C)`` and sets ``num_vectors = k``; a model classifies by the maximum of the k
logits per class (Appendix C.2, k = 3). Attention is ``(B, k, H, W)`` (or ``(B, k, N)``), each
vector's weights summing to 1 over locations.
"""

from __future__ import annotations

import torch
from torch import nn

from .assignment import kmeans, normalize_locations, sinkhorn, squared_distances
from .base import Pool, as_tokens, attention_layout, grid_of
from .framework import Components, slot_attention
from .noise import seeded_normal
from .registry import register_pool


def otk(
    tokens: torch.Tensor, references: torch.Tensor, eps: float = 0.1, iterations: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimal transport pooling (B13)-(B15) with ``psi = id``: ``U = X eta_2(P*)``, ``P* = SINKHORN(e^{-C/eps})``.

    The cost is the squared distance per channel, ``c_ij = ||x_i - u_j||^2 / d``, so ``eps`` does not
    depend on the width.

    Args:
        tokens: features ``(B, N, C)``.
        references: learnable ``U`` as ``(k, C)``.
        eps: entropic regularisation ``epsilon`` of (B14).
        iterations: Sinkhorn rounds (T = 3 in Appendix C.2).

    Returns:
        ``(pooled, attention)``: ``(B, k, C)`` and the plan normalised per vector, ``(B, k, N)``.
    """
    B, N, C = tokens.shape  # batch, locations, channels
    cost = squared_distances(references.expand(B, -1, -1), tokens) / C  # (B, k, N)
    attention = normalize_locations(sinkhorn(-cost / eps, iterations))  # (B, k, N)
    return torch.bmm(attention, tokens), attention  # (B, k, N) x (B, N, C) -> (B, k, C)


@register_pool("otk")
class OTK(Pool):
    """Optimal transport kernel embedding (Mialon et al., ICLR 2021), simplified: ``psi = id`` (B15).

    ``U = X eta_2(SINKHORN(exp(-C / eps)))`` with learnable references ``U`` and ``c_ij = ||x_i - u_j||^2 / d``.
    The original's Nystrom kernel embedding ``psi`` is left out (no dimension change), as in Table 1's
    ``phi_V = psi(X)`` replaced by ``X``.

    Args:
        dim: channels.
        num_vectors: ``k`` references (3 in Appendix C.2).
        eps: entropic regularisation.
        iterations: Sinkhorn rounds (3).
    """

    components = Components(
        "OTK",
        2,
        k="k",
        u0="U",
        phi_q="U",
        phi_k="X",
        similarity="−‖x−y‖²",
        attention="SINKHORN(e^{S/ϵ})",
        phi_v="X (ψ = id)",
        source="Mialon et al., ICLR 2021",
    )

    def __init__(self, dim: int, num_vectors: int = 3, eps: float = 0.1, iterations: int = 3):
        super().__init__()
        if num_vectors < 1 or iterations < 1 or not eps > 0:
            raise ValueError(f"need num_vectors >= 1, iterations >= 1, eps > 0; got {num_vectors}, {iterations}, {eps}")
        self.out_features, self.num_vectors, self.eps, self.iterations = dim, num_vectors, eps, iterations
        self.references = nn.Parameter(torch.randn(num_vectors, dim))

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        tokens, _ = as_tokens(x)
        pooled, attention = otk(tokens, self.references, self.eps, self.iterations)
        return (pooled, attention_layout(attention, grid_of(x))) if return_attention else pooled


@register_pool("kmeans")
class KMeans(Pool):
    """k-means as pooling (MacQueen 1967; B16-B20): ``U^{t+1} = X eta_2(argmax_1(-||x_i - u_j||^2))``.

    ``U^0`` is ``k`` random features of each image. In eval mode the choice comes from noise seeded
    with ``seed`` (:mod:`~simpool.pooling.noise`), so the output is deterministic, the same on every
    device and under ``torch.compile``; in training mode it uses the global random state. No parameters.

    Args:
        dim: channels.
        num_vectors: ``k`` (3 in Appendix C.2).
        iterations: ``T`` updates (5); an image whose centroids have converged keeps them.
        tolerance: relative centroid shift at which an image counts as converged (0.01).
        seed: seed of the eval-mode initialisation.
    """

    components = Components(
        "k-means",
        2,
        cat=False,
        iterative=True,
        k="k",
        u0="random",
        phi_q="U",
        phi_k="X",
        similarity="−‖x−y‖²",
        attention="η2(argmax1(S))",
        phi_x="X",
        source="MacQueen, 1967",
    )

    def __init__(self, dim: int, num_vectors: int = 3, iterations: int = 5, tolerance: float = 0.01, seed: int = 0):
        super().__init__()
        if num_vectors < 1 or iterations < 0:
            raise ValueError(f"need num_vectors >= 1 and iterations >= 0, got {num_vectors}, {iterations}")
        self.out_features, self.num_vectors = dim, num_vectors
        self.iterations, self.tolerance, self.seed = iterations, tolerance, seed

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        tokens, _ = as_tokens(x)
        seed = None if self.training else self.seed  # eval: seeded noise, the same on every device
        pooled, attention = kmeans(tokens, self.num_vectors, self.iterations, self.tolerance, seed=seed)
        return (pooled, attention_layout(attention, grid_of(x))) if return_attention else pooled


@register_pool("slot")
class SlotAttention(Pool):
    """Slot Attention (Locatello et al., NeurIPS 2020) as pooling into ``k`` slots (B21)-(B24).

    ``U^0 ~ N(mu, sigma^2)``; per iteration ``A = eta_1(sigma_2(K^T Q / sqrt(n)))`` with
    ``Q = W_Q LN(U)``, ``K = W_K LN(X)`` (softmax over slots, then normalised over locations),
    ``Z = V A`` with ``V = W_V LN(X)``, ``G = GRU(Z, U)``, ``U = G + MLP(LN(G))``. The original
    formulation, with its LayerNorms and residual (Table 1 lists the simplified one). The initial
    noise is drawn on the input's device; in eval mode it is seeded with ``seed``
    (:mod:`~simpool.pooling.noise`), so the output is deterministic, also under ``torch.compile``.

    Args:
        dim: channels (also the slot width).
        num_vectors: ``k`` slots (3 in Appendix C.2).
        iterations: ``T`` (3).
        mlp_ratio: hidden width of the MLP relative to ``dim``.
        seed: seed of the eval-mode initial noise.
    """

    components = Components(
        "Slot",
        2,
        iterative=True,
        k="k",
        u0="N(μ, σ²)",
        phi_q="WQ U",
        phi_k="WK X",
        similarity="x⊤y",
        attention="η2(σ1(S/√d))",
        phi_v="WV X",
        phi_x="X",
        phi_u="MLP(GRU(Z))",
        source="Locatello et al., 2020",
    )

    def __init__(self, dim: int, num_vectors: int = 3, iterations: int = 3, mlp_ratio: float = 1.0, seed: int = 0):
        super().__init__()
        if num_vectors < 1 or iterations < 1:
            raise ValueError(f"need num_vectors >= 1 and iterations >= 1, got {num_vectors}, {iterations}")
        self.out_features, self.num_vectors, self.iterations, self.seed = dim, num_vectors, iterations, seed
        self.mu = nn.Parameter(torch.randn(1, 1, dim) * dim**-0.5)
        self.log_sigma = nn.Parameter(torch.full((1, 1, dim), -1.0))
        self.norm_input, self.norm_slots, self.norm_mlp = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.k, self.v = (
            nn.Linear(dim, dim, bias=False),
            nn.Linear(dim, dim, bias=False),
            nn.Linear(dim, dim, bias=False),
        )
        self.gru = nn.GRUCell(dim, dim)
        hidden = max(1, int(dim * mlp_ratio))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        tokens, _ = as_tokens(x)
        B, N, C = tokens.shape  # batch, locations, channels
        k = self.num_vectors
        if self.training:
            noise = torch.randn(B, k, C, device=tokens.device, dtype=tokens.dtype)  # (B, k, C)
        else:  # seeded, drawn on the tokens' device, the same on every device and compiled
            noise = seeded_normal((B, k, C), self.seed, tokens.device).to(tokens.dtype)  # (B, k, C)
        slots = self.mu + self.log_sigma.exp() * noise  # U^0: (B, k, C)
        inputs = self.norm_input(tokens)  # LN(X): (B, N, C)
        keys, values = self.k(inputs), self.v(inputs)  # (B, N, C)
        for _ in range(self.iterations):
            queries = self.q(self.norm_slots(slots))  # (B, k, C)
            scores = torch.bmm(queries, keys.transpose(1, 2)) * C**-0.5  # (B, k, N)
            attention = slot_attention(scores)  # softmax over slots, normalised over locations: (B, k, N)  (B21)
            updates = torch.bmm(attention, values)  # (B, k, C)                                            (B22)
            slots = self.gru(updates.reshape(B * k, C), slots.reshape(B * k, C)).view(B, k, C)  # (B23)
            slots = slots + self.mlp(self.norm_mlp(slots))  # (B24)
        return (slots, attention_layout(attention, grid_of(x))) if return_attention else slots
