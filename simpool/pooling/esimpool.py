"""Efficient SimPool (efficient-probing's ``esimpool``, Psomas et al., ICLR 2026): SimPool without its linears.

SimPool's query and key projections ``W_Q``, ``W_K`` removed; the query is the normalised GAP vector, the
keys the normalised features, the values the features themselves, per head ``i`` of ``d`` channels:

    q = LN(pi_A(X)),   K = LN(X),   V = X
    a_i = softmax(K_i q_i / sqrt(d))        over the N locations
    u   = [V_1^T a_1 ; ... ; V_h^T a_h]

A LayerNorm (shared by query and keys) is its only parameter set.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Pool, as_tokens, attention_layout, heads_for
from .framework import Components
from .probing import query_attention
from .registry import register_pool


@register_pool("esimpool")
class ESimPool(Pool):
    """SimPool without ``W_Q`` and ``W_K`` (efficient-probing's ``SimPool_nolinears``, whose state dict loads).

    Args:
        dim: ``C``.
        num_heads: ``h``; None: the reference's 12 where 12 divides ``dim``, else ``dim // head_dim``
            (:func:`~simpool.pooling.base.heads_for`).
        head_dim: channels per head when ``num_heads`` is None (64).
        norm_eps: the LayerNorm's epsilon (1e-6, as the reference).

    Attention: ``(B, h, ...)``, one map per head (``(B, ...)`` for one head).
    """

    components = Components(
        "ESimPool",
        5,
        u0="πA(X)",
        phi_q="LN(U)",
        phi_k="LN(X)",
        similarity="x⊤y",
        attention="σ2(S_i/√d), i=1..m",
        phi_v="X",
        source="Psomas et al., ICLR 2026",
    )

    def __init__(self, dim: int, num_heads: int | None = None, head_dim: int = 64, norm_eps: float = 1e-6):
        super().__init__()
        self.num_heads, self.out_features = heads_for(dim, num_heads, head_dim, reference=12), dim
        self.norm = nn.LayerNorm(dim, eps=norm_eps)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        tokens, grid = as_tokens(x)  # (B, N, C)
        query = self.norm(tokens.mean(dim=1, keepdim=True))  # LN(pi_A(X)): (B, 1, C)
        pooled, attention = query_attention(query, self.norm(tokens), tokens, self.num_heads)  # (B, 1, C)
        pooled = pooled[:, 0]  # (B, C)
        return (pooled, attention_layout(attention[:, :, 0], grid)) if return_attention else pooled

    def load_reference_state_dict(self, state_dict: dict) -> None:
        """Load ``SimPool_nolinears`` weights strictly (``norm_patches -> norm``)."""
        self.load_state_dict({key.replace("norm_patches.", "norm."): value for key, value in state_dict.items()})


__all__ = ["ESimPool"]
