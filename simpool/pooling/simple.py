"""Group 1 of Table 1: simple pooling with k = 1 that is not attention-based."""

from __future__ import annotations

import torch

from .base import Pool, as_tokens, attention_layout, uniform_attention
from .registry import register_pool


def gap(x: torch.Tensor) -> torch.Tensor:
    """Global average pooling ``pi_A(X) = X 1_p / p`` (B1): ``(B, C, H, W)`` or ``(B, N, C)`` -> ``(B, C)``."""
    tokens, _ = as_tokens(x)
    return tokens.mean(dim=1)  # (B, N, C) -> (B, C)


@register_pool("gap")
class GAP(Pool):
    """Global average pooling (Lin et al., 2014): ``u = X 1_p / p``, attention ``a = 1_p / p`` (B1)-(B2)."""

    def __init__(self, dim: int):
        super().__init__()
        self.out_features = dim

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        pooled = gap(x)
        if return_attention:
            return pooled, attention_layout(uniform_attention(x), x.shape[-2:] if x.ndim == 4 else None)
        return pooled
