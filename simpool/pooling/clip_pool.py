"""CLIP's attention pooling (Radford et al., ICML 2021): the GAP vector as the query, a learned position embedding.

The ResNet image encoders of CLIP end with one multi-head attention whose only query is the mean of the
features, over the features and the mean itself, each plus an absolute position embedding ``P``:

    X' = [mean(X); X] + P                             (1 + N tokens; P resampled to the grid)
    a_i = softmax((W_Q x'_0)_i (W_K X')_i^T / sqrt(d))    over the 1 + N tokens
    u   = W_O [ (W_V X')_i a_i ]_{i=1..h}

timm's ``AttentionPool2d``, with its parameter names (``qkv`` or ``q``/``k``/``v``, ``proj``, ``pos_embed``,
``cls_token``) so its state dict loads unchanged. efficient-probing's ``clip`` head is the same with a
LayerNorm on the features first (``norm=True``; 4 heads, a fixed grid).
"""

from __future__ import annotations

import math

import torch
from timm.layers import resample_abs_pos_embed, trunc_normal_
from torch import nn

from .base import Pool, as_tokens, attention_layout, heads_for
from .framework import Components
from .probing import query_attention
from .registry import register_alias, register_pool


def token_grid(num_tokens: int) -> tuple[int, int]:
    """The grid of ``N`` tokens given without one: the square ``(s, s)`` when ``N = s^2``, else one row ``(1, N)``."""
    side = math.isqrt(num_tokens)
    return (side, side) if side * side == num_tokens else (1, num_tokens)


@register_pool("clip")
class AttentionPool2d(Pool):
    """CLIP's attention pooling, timm's ``AttentionPool2d``: its constructor arguments, names and outputs.

    The position embedding (learned for ``feat_size``) is resampled to any grid as timm does (bicubic,
    antialiased). Tokens ``(B, N, C)`` carry no grid: a square ``N`` is laid on the square grid (so a map and
    its flattened tokens pool alike), any other ``N`` on one row ``(1, N)``.

    The query also attends to the mean token (``x'_0``); the returned attention drops that key and is
    renormalised over the locations: ``(B, h, ...)``, one map per head.

    Args:
        dim: ``C`` (timm's ``in_features``; also its ``embed_dim``).
        feat_size: the grid the position embedding is learned for (7: a ResNet at 224 px).
        out_features: None: ``dim``; 0: timm's pre-logits form, without the output projection; else the
            projection's width.
        num_heads: ``h``; None means ``dim // head_dim`` (:func:`~simpool.pooling.base.heads_for`: where
            ``head_dim`` does not divide ``dim``, which timm refuses, heads of the divisor closest to it).
        head_dim: ``d`` when ``num_heads`` is None (64).
        qkv_bias: biases on the projections.
        qkv_separate: separate ``q``, ``k``, ``v`` layers instead of one ``qkv``.
        pool_type: ``"token"``, the pooled query token (timm's other value, ``""``, returns a map, not a pool).
        class_token: a learned query token instead of the mean.
        norm: a LayerNorm(eps=1e-6) on the features before everything (efficient-probing's head, the alias
            ``clip_ep``: ``feat_size=14, num_heads=4, norm=True``).
    """

    components = Components(
        "CLIP",
        "P",
        u0="πA(X)",
        phi_q="g_m(WQ (u0 + p0))",
        phi_k="g_m(WK ([u0; X] + P))",
        similarity="x⊤y",
        attention="σ2(S_i/√d), i=1..m",
        phi_v="g_m(WV ([u0; X] + P))",
        phi_u="WO g_m⁻¹(Z)",
        source="Radford et al., ICML 2021",
    )

    def __init__(
        self,
        dim: int,
        feat_size: int | tuple[int, int] = 7,
        out_features: int | None = None,
        num_heads: int | None = None,
        head_dim: int = 64,
        qkv_bias: bool = True,
        qkv_separate: bool = False,
        pool_type: str = "token",
        class_token: bool = False,
        norm: bool = False,
    ):
        super().__init__()
        if pool_type != "token" or (out_features is not None and out_features < 0):
            raise ValueError(f"pool_type must be 'token' (got {pool_type!r}) and out_features >= 0 ({out_features})")
        self.num_heads = heads_for(dim, num_heads, head_dim)
        self.out_features = dim if out_features is None else out_features or dim
        self.feat_size = (feat_size, feat_size) if isinstance(feat_size, int) else tuple(feat_size)
        self.cls_token = nn.Parameter(torch.zeros(1, dim)) if class_token else None
        if qkv_separate:
            self.q = nn.Linear(dim, dim, bias=qkv_bias)
            self.k = nn.Linear(dim, dim, bias=qkv_bias)
            self.v = nn.Linear(dim, dim, bias=qkv_bias)
            self.qkv = None
        else:
            self.q = self.k = self.v = None
            self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Identity() if out_features == 0 else nn.Linear(dim, self.out_features)
        self.norm = nn.LayerNorm(dim, eps=1e-6) if norm else nn.Identity()
        self.pos_embed = nn.Parameter(torch.zeros(self.feat_size[0] * self.feat_size[1] + 1, dim))
        for layer in (self.qkv,) if self.qkv is not None else (self.q, self.k, self.v):
            trunc_normal_(layer.weight, std=dim**-0.5)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        trunc_normal_(self.pos_embed, std=dim**-0.5)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        tokens, grid = as_tokens(x)
        B, N, C = tokens.shape  # batch, locations, channels
        grid = grid or token_grid(N)
        tokens = self.norm(tokens)  # (B, N, C)
        first = tokens.mean(dim=1, keepdim=True) if self.cls_token is None else self.cls_token.expand(B, 1, C)
        tokens = torch.cat([first, tokens], dim=1)  # (B, 1 + N, C)
        pos_embed = resample_abs_pos_embed(self.pos_embed.unsqueeze(0), grid, self.feat_size, num_prefix_tokens=1)
        tokens = tokens + pos_embed  # (1, 1 + N, C) broadcast
        if self.qkv is None:
            query, keys, values = self.q(tokens[:, :1]), self.k(tokens), self.v(tokens)  # (B, 1, C), (B, 1 + N, C)
        else:
            query, keys, values = self.qkv(tokens).view(B, N + 1, 3, C).unbind(2)  # (B, 1 + N, C) each
            query = query[:, :1]  # only the first token's output is kept: (B, 1, C)
        outputs, attention = query_attention(query, keys, values, self.num_heads)  # (B, 1, C), (B, h, 1, 1 + N)
        pooled = self.proj(outputs[:, 0])  # (B, C_out)
        if return_attention:
            attention = attention[:, :, 0, 1:]  # to the locations: (B, h, N)
            attention = attention / attention.sum(dim=-1, keepdim=True).clamp_min(1e-12)
            return pooled, attention_layout(attention, grid if x.ndim == 4 else None)
        return pooled

    def load_reference_state_dict(self, state_dict: dict) -> None:
        """Load a timm ``AttentionPool2d`` state dict strictly, or efficient-probing's (``norm=True``): same names."""
        self.load_state_dict(state_dict)


# efficient-probing's clip head (its AttentionPool2d(in_features=dim, feat_size=14): 4 heads, a LayerNorm first);
# "clip" stays timm's (CLIP's)
register_alias("clip_ep", "clip", feat_size=14, num_heads=4, norm=True)


__all__ = ["AttentionPool2d", "token_grid"]
