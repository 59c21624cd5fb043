"""Feature maps for pools that convolve over locations (HOW, CBAM, Gather-Excite), from maps or tokens."""

from __future__ import annotations

import math

import torch

from .base import as_tokens


def as_map(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int] | None]:
    """View features as a map ``(B, C, H, W)``, remembering the grid of a map input (None for tokens).

    Tokens ``(B, N, C)`` are laid on a square grid when ``N`` is a square (a ViT's patches), else on
    one row ``(1, N)``.
    """
    if x.ndim == 4:
        return x, tuple(x.shape[-2:])
    tokens, _ = as_tokens(x)
    B, N, C = tokens.shape  # batch, locations, channels
    side = math.isqrt(N)
    grid = (side, side) if side * side == N else (1, N)
    return tokens.transpose(1, 2).reshape(B, C, *grid), None  # (B, N, C) -> (B, C, H, W)
