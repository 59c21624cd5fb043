"""Attentive probes whose query attention is a transformer block: SigLIP's MAP head and V-JEPA's pooler.

Both cross-attend learned queries ``Q`` to the features ``X`` and refine the result with an MLP on a
residual branch; see ``probing.py`` for the shared attention :func:`query_attention` and the attention layout
(one map per query and head, ``(B, M*h, ...)``).

``map``  SigLIP's multi-head attention pooling (Zhai et al., ICCV 2023), timm's ``AttentionPoolLatent``:

    A_i = softmax((W_Q Q)_i (W_K X)_i^T / sqrt(d)),   Z = W_O [A_i (W_V X)_i]_i
    U   = Z + MLP(LN(Z)),   u = U_1 (``pool_type="token"``) or mean_m U_m (``"avg"``)

``jepa`` V-JEPA's attentive pooler (Bardes et al., 2024), a pre-norm cross-attention block then ``depth - 1``
self-attention blocks over the queries:

    G = Q + W_O [softmax((W_Q Q)_i (W_K LN(X))_i^T / sqrt(d)) (W_V LN(X))_i]_i,   U = G + MLP(LN(G))
    U <- Block(U)  (depth - 1 times),   u = mean_m U_m
"""

from __future__ import annotations

import math

import torch
from timm.layers import Attention, Mlp, trunc_normal_, trunc_normal_tf_
from torch import nn

from .base import Pool, as_tokens, attention_layout, heads_for
from .framework import Components
from .probing import per_query, query_attention
from .registry import register_alias, register_pool


@register_pool("map")
class AttentionPoolLatent(Pool):
    """SigLIP's MAP head (Zhai et al., "Sigmoid Loss for Language Image Pre-Training", ICCV 2023).

    timm's ``AttentionPoolLatent`` with its constructor arguments and their meaning, and its parameter names
    (``latent``, ``q``, ``kv``, ``proj``, ``norm``, ``mlp``), so its state dict loads strictly and its output is
    ours. ``norm=True`` is the LayerNorm(eps=1e-6) that timm's ViTs pass (``global_pool="map"``); timm's
    standalone default has none (``norm=False``). Computed without the fused kernel, to give the attention:
    ``(B, h, ...)`` for ``pool_type="token"`` (the first query's heads), ``(B, M*h, ...)`` for ``"avg"``.

    Args:
        dim: ``C``, timm's ``in_features``.
        out_features: None: ``dim``; 0: timm's pre-logits form, without the output projection, the norm and the
            MLP (the pooled vector is the heads' concatenated outputs, ``dim`` wide); else the output width.
        num_heads: ``h`` (timm's 8); None: ``dim // head_dim`` (:func:`~simpool.pooling.base.heads_for`).
        mlp_ratio: hidden width of the MLP relative to ``out_features``.
        qkv_bias: biases on ``W_Q``, ``W_K``, ``W_V``.
        q_proj: a query projection ``W_Q`` (False: the latent is the query, AIM-style).
        latent_len: ``M``, the learned queries.
        pool_type: ``"token"`` (the first query's output) or ``"avg"`` (the mean over queries).
        norm: the LayerNorm before the MLP.
        head_dim: channels per head when ``num_heads`` is None (64).
        num_queries: the same as ``latent_len`` (the name of the other probing heads); give one of them.
    """

    components = Components(
        "MAP",
        "P",
        u0="Q (learned)",
        phi_q="g_m(WQ Q)",
        phi_k="g_m(WK X)",
        similarity="x⊤y",
        attention="σ2(S_i/√d), i=1..m",
        phi_v="g_m(WV X)",
        phi_u="MLP(WO g_m⁻¹(Z))",
        source="Zhai et al., ICCV 2023",
    )

    def __init__(
        self,
        dim: int,
        out_features: int | None = None,
        num_heads: int | None = 8,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        q_proj: bool = True,
        latent_len: int = 1,
        pool_type: str = "token",
        norm: bool = True,
        head_dim: int = 64,
        num_queries: int | None = None,
    ):
        super().__init__()
        latent_len = _one_of("latent_len", latent_len, "num_queries", num_queries, default=1)
        if latent_len < 1 or (out_features is not None and out_features < 0):
            raise ValueError(f"latent_len={latent_len} must be >= 1 and out_features={out_features} >= 0")
        if pool_type not in ("token", "avg"):
            raise ValueError(f"pool_type must be 'token' or 'avg', got {pool_type!r}")
        self.num_heads = heads_for(dim, num_heads, head_dim)
        self.latent_len, self.pool = latent_len, pool_type  # timm's name; num_queries is only an input alias
        self.out_features = dim if out_features is None else out_features or dim
        self.latent = nn.Parameter(torch.zeros(1, latent_len, dim))
        self.q = nn.Linear(dim, dim, bias=qkv_bias) if q_proj else nn.Identity()
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        width = self.out_features
        pre_logits = out_features == 0
        self.proj = nn.Identity() if pre_logits else nn.Linear(dim, width)
        self.norm = nn.LayerNorm(width, eps=1e-6) if norm and not pre_logits else nn.Identity()
        self.mlp = None if pre_logits else Mlp(width, int(width * mlp_ratio), out_features=width, act_layer=nn.GELU)
        trunc_normal_tf_(self.latent, std=dim**-0.5)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        tokens, grid = as_tokens(x)
        B, N, C = tokens.shape  # batch, locations, channels
        queries = self.q(self.latent).expand(B, -1, -1)  # (B, M, C)
        keys, values = self.kv(tokens).view(B, N, 2, C).unbind(2)  # (B, N, C) each
        outputs, attention = query_attention(queries, keys, values, self.num_heads)  # (B, M, C), (B, h, M, N)
        outputs = self.proj(outputs)  # (B, M, C_out)
        if self.mlp is not None:
            outputs = outputs + self.mlp(self.norm(outputs))  # (B, M, C_out)
        if self.pool == "token":
            pooled, attention = outputs[:, 0], attention[:, :, 0]  # (B, C_out), (B, h, N)
        else:
            pooled, attention = outputs.mean(dim=1), per_query(attention)  # (B, C_out), (B, M*h, N)
        return (pooled, attention_layout(attention, grid)) if return_attention else pooled

    def load_reference_state_dict(self, state_dict: dict) -> None:
        """Load a timm ``AttentionPoolLatent`` state dict strictly (the same names; no ``pos_embed``)."""
        self.load_state_dict(state_dict)


register_alias("siglip", "map", norm=False)  # efficient-probing's head: timm's AttentionPoolLatent(in_features=dim)


def _one_of(name: str, value, alias: str, alias_value, default):
    """``value`` of argument ``name`` or of its alias ``alias``; both given and different: a ValueError."""
    if alias_value is None:
        return value
    if value != default and value != alias_value:
        raise ValueError(f"{name}={value} and {alias}={alias_value} name the same setting; give one of them")
    return alias_value


class _CrossAttention(nn.Module):
    """``W_O [softmax((W_Q Q)_i (W_K X)_i^T / sqrt(d)) (W_V X)_i]_i``: V-JEPA's ``q``, ``kv``, ``proj``."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, queries: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, N, C = tokens.shape  # batch, locations, channels
        keys, values = self.kv(tokens).view(B, N, 2, C).unbind(2)  # (B, N, C) each
        outputs, attention = query_attention(self.q(queries), keys, values, self.num_heads)  # (B, M, C)
        return self.proj(outputs), attention  # (B, M, C), (B, h, M, N)


class _CrossAttentionBlock(nn.Module):
    """``G = Q + XAttn(Q, LN(X))``, ``U = G + MLP(LN(G))``: V-JEPA's ``CrossAttentionBlock``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.xattn = _CrossAttention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)

    def forward(self, queries: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        update, attention = self.xattn(queries, self.norm1(tokens))  # (B, M, C)
        queries = queries + update
        return queries + self.mlp(self.norm2(queries)), attention


class _Block(nn.Module):
    """A pre-norm self-attention block over the queries (V-JEPA's ``Block``; its state-dict names)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))  # (B, M, C)
        return x + self.mlp(self.norm2(x))


@register_pool("jepa")
class AttentivePooler(Pool):
    """V-JEPA's attentive pooler (Bardes et al., "Revisiting Feature Prediction...", 2024, ``facebookresearch/jepa``).

    Learned queries through one cross-attention block with MLP, then ``depth - 1`` self-attention blocks
    over the queries; the pooled vector is the mean of the ``M`` query outputs (V-JEPA uses ``M = 1``).
    Parameter names as ``AttentivePooler``'s (``query_tokens``, ``cross_attention_block``, ``blocks``), and so
    is the initialisation (truncated normal 0.02, output layers of block ``l`` divided by ``sqrt(2 l)``).
    Unlike V-JEPA's own code (``enumerate(1, self.blocks)``, a TypeError), ``depth > 1`` works.
    Attention: the cross-attention's, ``(B, M*h, ...)``.

    Args:
        dim: ``C`` (``embed_dim``).
        num_heads: ``h``; None: V-JEPA's 12 where 12 divides ``dim``, else ``dim // head_dim``
            (:func:`~simpool.pooling.base.heads_for`: 32 at ResNet-50's 2048).
        num_queries: ``M`` (1).
        depth: blocks in all (1: the cross-attention block only).
        mlp_ratio: MLP hidden width relative to ``dim``.
        qkv_bias: biases on the projections.
        head_dim: channels per head when ``num_heads`` is None (64).
    """

    components = Components(
        "V-JEPA",
        "P",
        u0="Q (learned)",
        phi_q="g_m(WQ Q)",
        phi_k="g_m(WK LN(X))",
        similarity="x⊤y",
        attention="σ2(S_i/√d), i=1..m",
        phi_v="g_m(WV LN(X))",
        phi_u="MLP(Q + WO g_m⁻¹(Z))",
        source="Bardes et al., 2024",
    )

    def __init__(
        self,
        dim: int,
        num_heads: int | None = None,
        num_queries: int = 1,
        depth: int = 1,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        init_std: float = 0.02,
        head_dim: int = 64,
    ):
        super().__init__()
        num_heads = heads_for(dim, num_heads, head_dim, reference=12)
        if num_queries < 1 or depth < 1:
            raise ValueError(f"num_queries={num_queries} and depth={depth} must be >= 1")
        self.num_queries, self.out_features = num_queries, dim
        self.query_tokens = nn.Parameter(torch.zeros(1, num_queries, dim))
        self.cross_attention_block = _CrossAttentionBlock(dim, num_heads, mlp_ratio, qkv_bias)
        self.blocks = nn.ModuleList(_Block(dim, num_heads, mlp_ratio, qkv_bias) for _ in range(depth - 1))
        trunc_normal_(self.query_tokens, std=init_std)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=init_std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        with torch.no_grad():
            for layer_id, block in enumerate([self.cross_attention_block, *self.blocks], 1):
                attention = block.xattn if layer_id == 1 else block.attn
                attention.proj.weight.div_(math.sqrt(2.0 * layer_id))
                block.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        tokens, grid = as_tokens(x)
        B = tokens.shape[0]  # batch
        queries = self.query_tokens.expand(B, -1, -1)  # (B, M, C)
        queries, attention = self.cross_attention_block(queries, tokens)  # (B, M, C), (B, h, M, N)
        for block in self.blocks:
            queries = block(queries)  # (B, M, C)
        pooled = queries.mean(dim=1)  # (B, C)
        return (pooled, attention_layout(per_query(attention), grid)) if return_attention else pooled

    def load_reference_state_dict(self, state_dict: dict) -> None:
        """Load ``AttentivePooler`` weights (V-JEPA's or efficient-probing's copy; the same names)."""
        self.load_state_dict(state_dict)


__all__ = ["AttentionPoolLatent", "AttentivePooler"]
