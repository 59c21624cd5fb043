"""The module a simpool pool sits in inside a timm model, and the k-vector classifier rule."""

from __future__ import annotations

import torch
from torch import nn


class PoolSlot(nn.Module):
    """Holds a pool where timm expects its ``SelectAdaptivePool2d`` (or ViT ``attn_pool``).

    Keeps timm's duck-typed pool API (``pool_type``, ``feat_mult()``, ``is_identity()``), adapts the
    output to what the head expects, and records the pool's attention while ``record_attention`` is
    set, so that attention maps are reachable without editing the model.

    Args:
        pool: a simpool pool (``forward(x, return_attention=False)``).
        keepdim: return ``(B, C, 1, 1)`` (``(B, C, k, 1)`` for k vectors) for heads that normalise a
            4-D map next, as ConvNeXt's ``LayerNorm2d``.
    """

    def __init__(self, pool: nn.Module, keepdim: bool = False):
        super().__init__()
        self.pool = pool
        self.keepdim = keepdim
        self.flatten = nn.Identity()
        self.record_attention = False
        self.attention: torch.Tensor | None = None

    @property
    def pool_type(self) -> str:
        return getattr(self.pool, "pool_type", type(self.pool).__name__.lower())

    def feat_mult(self) -> int:
        return 1

    def is_identity(self) -> bool:
        return False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.record_attention:
            pooled, self.attention = self.pool(x, return_attention=True)
        else:
            pooled = self.pool(x)
        if self.keepdim:
            # (B, C) -> (B, C, 1, 1); (B, k, C) -> (B, C, k, 1): one position per vector
            pooled = pooled[..., None, None] if pooled.ndim == 2 else pooled.transpose(1, 2)[..., None]
        return pooled


class VectorFlatten(nn.Module):
    """Flatten after a 4-D head norm: ``(B, C, 1, 1) -> (B, C)`` and ``(B, C, k, 1) -> (B, k, C)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] == 1:
            return x.flatten(1)  # (B, C)
        return x.flatten(2).transpose(1, 2)  # (B, C, k) -> (B, k, C)


def max_over_vectors(module: nn.Module, inputs, logits: torch.Tensor) -> torch.Tensor:
    """Forward hook on a classifier: with k pooled vectors, a class scores the maximum of its k logits.

    The paper's setting for Group 2 (Appendix C.2): ``(B, k, num_classes) -> (B, num_classes)``.
    """
    return logits.amax(dim=1) if logits.ndim == 3 else logits
