"""What every pool shares: the input-layout rule and the attention layout of the contract.

A pool takes a feature map ``(B, C, H, W)`` or a token sequence ``(B, N, C)``; the number of
dimensions decides. It returns ``(B, C_out)`` (or ``(B, k, C_out)`` with ``num_vectors = k > 1``)
and, on request, its attention over locations: ``(B, H, W)`` for maps, ``(B, N)`` for tokens, with
a dimension for heads or vectors after ``B`` when there are several.
"""

from __future__ import annotations

import torch
from torch import nn


def as_tokens(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int] | None]:
    """View features as tokens ``(B, N, C)``, remembering the grid of a map input.

    A channels-last map gives a contiguous view for free; a channels-first one a strided view.
    """
    if x.ndim == 4:
        B, C, H, W = x.shape  # batch, channels, height, width
        return x.flatten(2).transpose(1, 2), (H, W)  # (B, C, N) -> (B, N, C)
    if x.ndim == 3:
        return x, None
    raise ValueError(f"expected features of shape (B, C, H, W) or (B, N, C), got {tuple(x.shape)}")


def grid_of(x: torch.Tensor) -> tuple[int, int] | None:
    """The ``(H, W)`` grid of a map input ``(B, C, H, W)``; None for tokens ``(B, N, C)`` (as :func:`as_tokens`)."""
    return tuple(x.shape[-2:]) if x.ndim == 4 else None


def attention_layout(attention: torch.Tensor, grid: tuple[int, int] | None) -> torch.Tensor:
    """Put ``(B, M, N)`` attention (M heads or vectors) in the contract's layout.

    ``M == 1`` is dropped: ``(B, N)`` or ``(B, H, W)``; otherwise ``(B, M, N)`` or ``(B, M, H, W)``.
    """
    B, M, N = attention.shape  # batch, heads or vectors, locations
    if M == 1:
        attention = attention[:, 0]  # (B, N)
    if grid is not None:
        attention = attention.unflatten(-1, grid)  # (..., N) -> (..., H, W)
    return attention


def uniform_attention(x: torch.Tensor) -> torch.Tensor:
    """The implied weights of plain averaging, ``1/N`` at every location, as ``(B, 1, N)``."""
    tokens, _ = as_tokens(x)
    B, N, _ = tokens.shape
    return tokens.new_full((B, 1, N), 1.0 / N)


class Pool(nn.Module):
    """Base of every simpool pool: the contract attributes and timm's duck-typed pool API.

    Subclasses set ``out_features`` and implement ``forward(x, return_attention=False)``.
    ``pool_type``, ``feat_mult()`` and ``is_identity()`` let timm heads treat the pool like
    their own ``SelectAdaptivePool2d``.
    """

    pool_type: str = ""
    num_vectors: int = 1
    out_features: int

    def feat_mult(self) -> int:
        return 1

    def is_identity(self) -> bool:
        return False


def divisor_near(total: int, target: int) -> int:
    """The divisor of ``total`` closest to ``target`` (the smaller one on a tie): ``divisor_near(368, 64) = 46``."""
    divisors = [d for d in range(1, total + 1) if total % d == 0]
    return min(divisors, key=lambda d: (abs(d - target), d))


def heads_for(dim: int, num_heads: int | None = None, head_dim: int = 64, reference: int | None = None) -> int:
    """The number of attention heads over ``dim`` channels: ``num_heads`` when given, else the reference's.

    Unset, a head keeps the count of the reference that defined it (``reference``: AIM's and V-JEPA's 12, so 6 heads
    of 64 never replace 12 of 32 at ViT-S's 384) where that count divides ``dim``. Elsewhere, and for a head whose
    reference derives it (``reference=None``), it is ``dim // head_dim`` as timm's ``AttentionPool2d`` derives it
    (``head_dim=64``: 32 heads at ResNet-50's 2048, 20 at EfficientNet-B0's 1280). Where ``head_dim`` does not divide
    ``dim`` (timm refuses), the heads are as wide as the divisor of ``dim`` closest to ``head_dim`` (368 channels:
    8 heads of 46), so every width has a default.

    Raises:
        ValueError: ``num_heads`` is given and does not divide ``dim``, or ``head_dim < 1``.
    """
    if num_heads is not None:
        if num_heads < 1 or dim % num_heads:
            unset = f"or leave it unset: {f'{reference} heads, else ' if reference else ''}heads of {head_dim} channels"
            raise ValueError(f"num_heads={num_heads} must divide dim={dim}; {unset}")
        return num_heads
    if reference is not None and reference >= 1 and dim % reference == 0:
        return reference
    if head_dim < 1:
        raise ValueError(f"head_dim={head_dim} must be >= 1")
    return dim // divisor_near(dim, head_dim)
