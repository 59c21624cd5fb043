"""Group 1 of Table 1: simple pooling with k = 1 that is not attention-based (Appendix B.2).

Each is ``u = f^{-1}(f(X) a)`` (B1) for a pooling function ``f`` and fixed weights ``a``; HOW's
weights depend on ``X``. The implied weights are returned as the attention, summing to 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .assignment import normalize_locations
from .base import Pool, as_tokens, attention_layout, grid_of, uniform_attention
from .framework import Components
from .grid import as_map
from .registry import register_pool


def gap(x: torch.Tensor) -> torch.Tensor:
    """Global average pooling ``pi_A(X) = X 1_p / p`` (B1): ``(B, C, H, W)`` or ``(B, N, C)`` -> ``(B, C)``."""
    tokens, _ = as_tokens(x)
    return tokens.mean(dim=1)  # (B, N, C) -> (B, C)


def max_pool(x: torch.Tensor) -> torch.Tensor:
    """Global max pooling ``pi_max(X) = max_j x_j`` (B3)-(B4): ``(B, C)``."""
    tokens, _ = as_tokens(x)
    return tokens.amax(dim=1)  # (B, N, C) -> (B, C)


def max_attention(x: torch.Tensor) -> torch.Tensor:
    """Implied weights of max pooling: the share of channels whose maximum is at each location, ``(B, 1, N)``."""
    tokens, _ = as_tokens(x)
    B, N, C = tokens.shape  # batch, locations, channels
    winners = F.one_hot(tokens.argmax(dim=1), N).to(tokens.dtype)  # (B, C, N)
    return winners.mean(dim=1, keepdim=True)  # (B, 1, N)


def gem(x: torch.Tensor, p: torch.Tensor | float, eps: float = 1e-6) -> torch.Tensor:
    """Generalized mean ``pi_GeM(X) = (X^gamma 1_p / p)^{1/gamma}`` (B5)-(B6) with ``gamma = p``.

    ``X`` is clamped to ``eps`` first.
    """
    tokens, _ = as_tokens(x)
    return tokens.clamp(min=eps).pow(p).mean(dim=1).pow(1.0 / p)  # (B, N, C) -> (B, C)


def lse(x: torch.Tensor, r: torch.Tensor | float) -> torch.Tensor:
    """Log-sum-exp ``pi_LSE(X) = (1/r) log((1/p) sum_j exp(r x_j))`` (B7)-(B8): ``(B, C)``."""
    tokens, _ = as_tokens(x)
    N = tokens.shape[1]
    return (torch.logsumexp(tokens * r, dim=1) - math.log(N)) / r  # (B, N, C) -> (B, C)


def how(x: torch.Tensor, normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """HOW pooling without dimension reduction (B9)-(B12) (Tolias et al., ECCV 2020).

    ``a = diag(X^T X)`` (squared feature norms), ``V = avg3(X)`` (3x3 local average),
    ``z = V a``, ``u = z / ||z||`` when ``normalize`` (``phi_U = eta_2``).

    Returns:
        ``(pooled, attention)``: ``(B, C)`` and the weights ``a / sum(a)`` as ``(B, 1, N)``.
    """
    fmap, _ = as_map(x)  # (B, C, H, W)
    tokens, _ = as_tokens(fmap)  # (B, N, C)
    weights = tokens.square().sum(dim=-1)  # diag(X^T X): (B, N)                     (B10)
    smoothed = F.avg_pool2d(fmap, 3, stride=1, padding=1, count_include_pad=False)  # avg3(X): (B, C, H, W)
    values, _ = as_tokens(smoothed)  # (B, N, C)
    attention = normalize_locations(weights).unsqueeze(1)  # (B, 1, N)
    pooled = torch.bmm(attention, values)[:, 0]  # (B, 1, N) x (B, N, C) -> (B, C)  (B12), up to scale
    if normalize:
        pooled = F.normalize(pooled, dim=-1)
    return pooled, attention


class _SimplePool(Pool):
    """A k = 1 pool with the implied weights of its pooling function as attention."""

    def __init__(self, dim: int):
        super().__init__()
        self.out_features = dim

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        return uniform_attention(x)  # a = 1_p / p: (B, 1, N)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        pooled = self.pool(x)
        if return_attention:
            return pooled, attention_layout(self.weights(x), grid_of(x))
        return pooled


@register_pool("gap")
class GAP(_SimplePool):
    """Global average pooling (Lin et al., 2014): ``u = X 1_p / p``, attention ``a = 1_p / p`` (B1)-(B2)."""

    components = Components("GAP", 1, u0="", attention="1p/p", f="f_-1(x)", source="Lin et al., ICLR 2014")

    def pool(self, x):
        return gap(x)


@register_pool("max")
class MaxPool(_SimplePool):
    """Global max pooling (Tolias et al., ICLR 2016): ``u = max_j x_j = f_-inf^{-1}(f_-inf(X) 1_p)`` (B3)-(B4).

    The attention is the implied weights: the share of channels whose maximum is at each location.
    """

    components = Components("max", 1, cat=False, attention="1p", f="f_-∞(x)", source="Tolias et al., ICLR 2016")

    def pool(self, x):
        return max_pool(x)

    def weights(self, x):
        return max_attention(x)


@register_pool("gap_max")
class GAPMax(_SimplePool):
    """GAP + max (Lee et al., AISTATS 2016; timm's ``avgmax``): ``u = (pi_A(X) + pi_max(X)) / 2``."""

    components = Components("GAP+max", 1, attention="(1p/p + 1p)/2", f="f_-1, f_-∞", source="Lee et al., 2016")

    def pool(self, x):
        return 0.5 * (gap(x) + max_pool(x))

    def weights(self, x):
        return 0.5 * (uniform_attention(x) + max_attention(x))


@register_pool("gem")
class GeM(_SimplePool):
    """Generalized mean (Radenovic et al., TPAMI 2019): ``u = (X^gamma 1_p / p)^{1/gamma}`` (B5)-(B6).

    Args:
        dim: channels.
        p: initial exponent ``gamma``, learnable (2 as in Appendix C.2).
        learnable: learn ``p`` (GeM) or keep it fixed.
        eps: features are clamped to ``eps`` first, as GeM assumes ``X >= 0``.
    """

    components = Components("GeM", 1, cat=False, attention="1p/p", f="f_α(x), α learnable", source="Radenovic et al.")

    def __init__(self, dim: int, p: float = 2.0, learnable: bool = True, eps: float = 1e-6):
        super().__init__(dim)
        if not p > 0:
            raise ValueError(f"GeM exponent p must be positive, got {p}")
        self.p = nn.Parameter(torch.tensor(float(p))) if learnable else float(p)
        self.eps = eps

    def pool(self, x):
        return gem(x, self.p, self.eps)


@register_pool("lse")
class LSE(_SimplePool):
    """Log-sum-exp (Pinheiro & Collobert, CVPR 2015): ``u = (1/r) log((1/p) sum_j exp(r x_j))`` (B7)-(B8).

    Args:
        dim: channels.
        r: initial scale, learnable (10 as in Appendix C.2). Small ``r`` approaches GAP, large ``r`` max.
        learnable: learn ``r``.
    """

    components = Components("LSE", 1, attention="1p/p", f="e^{rx}, r learnable", source="Pinheiro & Collobert")

    def __init__(self, dim: int, r: float = 10.0, learnable: bool = True):
        super().__init__(dim)
        if not r > 0:
            raise ValueError(f"LSE scale r must be positive, got {r}")
        self.r = nn.Parameter(torch.tensor(float(r))) if learnable else float(r)

    def pool(self, x):
        return lse(x, self.r)


@register_pool("how")
class HOW(Pool):
    """HOW (Tolias et al., ECCV 2020) as a global pool: ``u = eta_2(avg3(X) diag(X^T X))`` (B9)-(B12).

    No dimension reduction (Appendix C.2), so no ``FC``; the attention is the squared feature norms,
    normalised to sum to 1.

    Args:
        dim: channels.
        normalize: L2-normalise the output (``phi_U = eta_2``, (B12)).
    """

    components = Components(
        "HOW", 1, cat=False, attention="diag(X⊤X)", phi_v="avg3(X)", phi_u="η2(Z)", source="Tolias et al., ECCV 2020"
    )

    def __init__(self, dim: int, normalize: bool = True):
        super().__init__()
        self.out_features = dim
        self.normalize = normalize

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        pooled, attention = how(x, self.normalize)
        if return_attention:
            return pooled, attention_layout(attention, grid_of(x))
        return pooled
