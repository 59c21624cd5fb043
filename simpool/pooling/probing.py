"""Attentive probing: learned queries cross-attending to frozen features (Psomas et al., ICLR 2026, Table 1).

Every head here pools the features ``X`` (``N`` locations of ``C`` channels) by ``M`` learned
queries ``Q``, one softmax over the locations per query and head:

    A = softmax(q(Q) k(X)^T / sqrt(d))     over the N locations          (M x N per head)
    Z = A v(X)                             one pooled vector per query

and they differ in the projections ``q``, ``k``, ``v``, the normalisations and how the ``M``
outputs become one vector:

``ep``   Efficient Probing (Psomas et al., ICLR 2026): no ``q``/``k`` projections, ``v`` narrower, query m
         reads only the m-th group of value channels; the groups are concatenated.
``aim``  AIM's attention-pooling classifier (El-Nouby et al., ICML 2024): no ``q``; BatchNorm on ``X``;
         queries averaged.
``coca`` CoCa's attentional pooler (Yu et al., TMLR 2022): LayerNorm on the queries, multi-query attention
         (one key and value head shared by all query heads), output projection.
``cae``  CAE's attentive probe (Chen et al., IJCV 2023): one zero-initialised query; LayerNorm on queries,
         keys and values separately; output projection.

``map`` and ``jepa`` (a query attention followed by an MLP) live in ``probing_blocks.py``, ``clip`` in
``clip_pool.py``. The attention returned has one map per query and head, ``(B, M * h, ...)`` query-major
(``(B, ...)`` when ``M * h == 1``); :func:`image_attention` reduces it to one map per image by the mean,
as :func:`simpool.models.attention_maps` does for every multi-head pool.

Each head loads the state dict of the efficient-probing repository's module through
``load_reference_state_dict`` (the names differ for ``coca`` and ``cae``; identical for ``ep`` and ``aim``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Pool, as_tokens, attention_layout, divisor_near, heads_for
from .framework import Components
from .registry import register_pool


def query_attention(
    queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, num_heads: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-head cross-attention of ``M`` queries over ``N`` tokens: ``Z_i = softmax(Q_i K_i^T / sqrt(d)) V_i``.

    Args:
        queries: ``(B, M, h*d)``, already projected.
        keys: ``(B, N, h*d)`` or ``(B, N, d)`` (one key head shared by all query heads, multi-query attention).
        values: ``(B, N, h*d_v)`` or ``(B, N, d_v)`` (shared likewise).
        num_heads: ``h``.

    Returns:
        ``(pooled, attention)``: ``(B, M, h*d_v)`` (heads concatenated) and ``(B, h, M, N)``.
    """
    B, M, _ = queries.shape  # batch, queries, channels
    N = keys.shape[1]  # locations
    q = queries.reshape(B, M, num_heads, -1).transpose(1, 2)  # (B, h, M, d)
    d = q.shape[-1]
    k = keys.reshape(B, N, -1, d).transpose(1, 2)  # (B, h or 1, N, d)
    v = values.reshape(B, N, k.shape[1], -1).transpose(1, 2)  # (B, h or 1, N, d_v)
    attention = (q * d**-0.5 @ k.transpose(-1, -2)).softmax(dim=-1)  # (B, h, M, N)
    pooled = (attention @ v).transpose(1, 2).reshape(B, M, -1)  # (B, h, M, d_v) -> (B, M, h*d_v)
    return pooled, attention


def per_query(attention: torch.Tensor) -> torch.Tensor:
    """``(B, h, M, N) -> (B, M*h, N)``: one map per query and head, query-major."""
    B, h, M, N = attention.shape  # batch, heads, queries, locations
    return attention.transpose(1, 2).reshape(B, M * h, N)  # (B, M, h, N) -> (B, M*h, N)


def image_attention(attention: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One attention map per image from a pool's attention for input ``x``: the mean over heads or queries.

    ``(B, M, H, W) -> (B, H, W)`` for a map input, ``(B, M, N) -> (B, N)`` for tokens; a single map is
    returned as it is. The same reduction as ``simpool.models.attention_maps(..., source="pool")``.
    """
    return attention.mean(dim=1) if attention.ndim == x.ndim else attention


def _reject_unknown(found: set[str], name: str) -> None:
    if found:
        raise KeyError(f"{name}: unexpected keys in the reference state dict: {sorted(found)}")


def efficient_probing(
    tokens: torch.Tensor, queries: torch.Tensor, value: nn.Linear
) -> tuple[torch.Tensor, torch.Tensor]:
    """Efficient Probing: ``a_m = softmax(X q_m / sqrt(C))``, ``z_m = (X W_V)_m^T a_m``, ``z = [z_1; ...; z_M]``.

    Args:
        tokens: ``X``, ``(B, N, C)``; also the keys (no key projection).
        queries: ``Q``, ``(M, C)`` learned (no query projection).
        value: ``W_V``, ``C -> C'``; split into ``M`` groups of ``C'/M`` channels, group ``m`` for query ``m``.

    Returns:
        ``(pooled, attention)``: ``(B, C')`` and ``(B, M, N)``.
    """
    B, N, C = tokens.shape  # batch, locations, channels
    M = queries.shape[0]  # queries
    attention = (queries * C**-0.5 @ tokens.transpose(1, 2)).softmax(dim=-1)  # (M, C) x (B, C, N) -> (B, M, N)
    values = value(tokens).reshape(B, N, M, -1).transpose(1, 2)  # (B, N, C') -> (B, M, N, C'/M)
    pooled = (attention.unsqueeze(2) @ values).reshape(B, -1)  # (B, M, 1, C'/M) -> (B, C')
    return pooled, attention


@register_pool("ep")
class EfficientProbing(Pool):
    """Efficient Probing (Psomas et al., "Attention, Please! Revisiting Attentive Probing...", ICLR 2026).

    ``M`` learned queries ``Q`` attend to the features themselves (no key or query projection); the values
    ``X W_V`` (width ``C' = C / d_out``) split into ``M`` groups, query ``m`` pooling group ``m``:

        a_m = softmax(X q_m / sqrt(C))             over the N locations
        z   = [ (X W_V)_1^T a_1 ; ... ; (X W_V)_M^T a_M ]   in R^{C'}

    Parameters ``cls_token`` ``(1, M, C)`` and ``v`` as in the reference ``EfficientProbing``, whose state
    dict loads unchanged. Attention: ``(B, M, ...)``, one map per query.

    Args:
        dim: ``C``.
        num_queries: ``M``; must divide ``dim // d_out``. None: the reference's 32, or where 32 does not divide
            ``dim // d_out``, the divisor of it closest to 32.
        d_out: width reduction, ``out_features = dim // d_out``.
        qkv_bias: a bias on ``W_V``.
    """

    components = Components(
        "EP",
        "P",
        u0="Q (M learned)",
        phi_q="Q",
        phi_k="X",
        similarity="x⊤y",
        attention="σ2(S/√d)",
        phi_v="g_M(WV X)",
        phi_u="g_M⁻¹(Z)",
        source="Psomas et al., ICLR 2026",
    )

    def __init__(self, dim: int, num_queries: int | None = None, d_out: int = 1, qkv_bias: bool = False):
        super().__init__()
        if d_out < 1 or dim % d_out:
            raise ValueError(f"d_out={d_out} must divide dim={dim}")
        num_queries = divisor_near(dim // d_out, 32) if num_queries is None else num_queries
        if num_queries < 1 or (dim // d_out) % num_queries:
            raise ValueError(f"num_queries={num_queries} must be >= 1 and divide dim // d_out = {dim} // {d_out}")
        self.num_queries, self.d_out, self.out_features = num_queries, d_out, dim // d_out
        self.v = nn.Linear(dim, dim // d_out, bias=qkv_bias)
        self.cls_token = nn.Parameter(torch.randn(1, num_queries, dim) * 0.02)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        tokens, grid = as_tokens(x)  # (B, N, C)
        pooled, attention = efficient_probing(tokens, self.cls_token[0], self.v)  # (B, C'), (B, M, N)
        return (pooled, attention_layout(attention, grid)) if return_attention else pooled

    def load_reference_state_dict(self, state_dict: dict) -> None:
        """Load the efficient-probing repository's ``EfficientProbing`` weights (the same names)."""
        self.load_state_dict(state_dict)


@register_pool("aim")
class AttentionPoolingClassifier(Pool):
    """AIM's attention-pooling classifier without its linear layer (El-Nouby et al., ICML 2024, ``apple/ml-aim``).

    Learned queries ``Q`` (no query projection) over batch-normalised features, per head ``i``:

        X'  = BN(X)                               BatchNorm1d over channels, no affine (optional)
        A_i = softmax(Q_i (W_K X')_i^T / sqrt(d))  (M x N)
        z   = (1/M) sum_m [A_1 (W_V X')_1 ; ... ; A_h (W_V X')_h]_m    mean of the M query outputs

    Parameter names as the reference's (``cls_token``, ``k``, ``v``, ``bn``). Attention: ``(B, M*h, ...)``.

    Args:
        dim: ``C``.
        num_heads: ``h``; None: AIM's 12 where 12 divides ``dim``, else ``dim // head_dim``
            (:func:`~simpool.pooling.base.heads_for`: 32 at ResNet-50's 2048).
        num_queries: ``M`` (1 in AIM).
        use_batch_norm: the BatchNorm on the features.
        qkv_bias: biases on ``W_K``, ``W_V``.
        head_dim: channels per head when ``num_heads`` is None (64).
    """

    components = Components(
        "AIM",
        "P",
        u0="Q (M learned)",
        phi_q="g_m(Q)",
        phi_k="g_m(WK BN(X))",
        similarity="x⊤y",
        attention="σ2(S_i/√d), i=1..m",
        phi_v="g_m(WV BN(X))",
        phi_u="mean_M g_m⁻¹(Z)",
        source="El-Nouby et al., ICML 2024",
    )

    def __init__(
        self,
        dim: int,
        num_heads: int | None = None,
        num_queries: int = 1,
        use_batch_norm: bool = True,
        qkv_bias: bool = False,
        head_dim: int = 64,
    ):
        super().__init__()
        if num_queries < 1:
            raise ValueError(f"num_queries={num_queries} must be >= 1")
        self.num_heads = heads_for(dim, num_heads, head_dim, reference=12)  # AIM's 12 where it divides dim
        self.num_queries, self.out_features = num_queries, dim
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.cls_token = nn.Parameter(torch.randn(1, num_queries, dim) * 0.02)
        self.bn = nn.BatchNorm1d(dim, affine=False, eps=1e-6) if use_batch_norm else nn.Identity()

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        tokens, grid = as_tokens(x)
        B, N, C = tokens.shape  # batch, locations, channels
        tokens = self.bn(tokens.reshape(B * N, C)).view(B, N, C)  # per channel over B and N: (B, N, C)
        queries = self.cls_token.expand(B, -1, -1)  # (B, M, C)
        outputs, attention = query_attention(queries, self.k(tokens), self.v(tokens), self.num_heads)  # (B, M, C)
        pooled = outputs.mean(dim=1)  # (B, C)
        return (pooled, attention_layout(per_query(attention), grid)) if return_attention else pooled

    def load_reference_state_dict(self, state_dict: dict) -> None:
        """Load the reference ``AttentionPoolingClassifier`` weights (the same names, ``bn`` statistics included)."""
        self.load_state_dict(state_dict)


@register_pool("coca")
class AttentionalPooler(Pool):
    """CoCa's attentional pooler (Yu et al., "CoCa: Contrastive Captioners...", TMLR 2022).

    Learned queries, LayerNorm without bias on the queries (and optionally the features), multi-query
    attention (``h`` query heads share one key and one value head), an output projection:

        Q'  = LN(Q) W_Q                                      (M x h*d)
        [K, V] = LN_ctx(X) W_KV                              (N x d each, shared by the heads)
        z_m = W_O [softmax(Q'_{m,i} K^T / sqrt(d)) V]_{i=1..h}
        z   = (1/M) sum_m z_m                                (M = 1: CoCa's classification query)

    The reference (lucidrains' ``coca_pytorch.CrossAttention`` with 196 queries) keeps only the first
    query's output; queries do not interact, so loading its weights with ``num_queries=1`` gives its
    output exactly. Attention: ``(B, M*h, ...)``.

    Args:
        dim: ``C``.
        num_heads: ``h`` (8).
        head_dim: ``d`` (64).
        num_queries: ``M`` (1).
        norm_context: a LayerNorm (no bias) on the features too.
    """

    components = Components(
        "CoCa",
        "P",
        u0="Q (M learned)",
        phi_q="g_m(WQ LN(Q))",
        phi_k="WK X",
        similarity="x⊤y",
        attention="σ2(S_i/√d), i=1..m",
        phi_v="WV X",
        phi_u="WO g_m⁻¹(Z)",
        source="Yu et al., TMLR 2022",
    )

    def __init__(
        self, dim: int, num_heads: int = 8, head_dim: int = 64, num_queries: int = 1, norm_context: bool = False
    ):
        super().__init__()
        if min(num_heads, head_dim, num_queries) < 1:
            raise ValueError(f"num_heads={num_heads}, head_dim={head_dim}, num_queries={num_queries} must be >= 1")
        self.num_heads, self.num_queries, self.out_features = num_heads, num_queries, dim
        self.queries = nn.Parameter(torch.randn(num_queries, dim))
        self.norm = nn.LayerNorm(dim, bias=False)
        self.norm_context = nn.LayerNorm(dim, bias=False) if norm_context else nn.Identity()
        self.q = nn.Linear(dim, num_heads * head_dim, bias=False)
        self.kv = nn.Linear(dim, 2 * head_dim, bias=False)
        self.proj = nn.Linear(num_heads * head_dim, dim, bias=False)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        tokens, grid = as_tokens(x)
        B, N, C = tokens.shape  # batch, locations, channels
        queries = self.q(self.norm(self.queries)).expand(B, -1, -1)  # (M, h*d) -> (B, M, h*d)
        keys, values = self.kv(self.norm_context(tokens)).chunk(2, dim=-1)  # (B, N, d) each
        outputs, attention = query_attention(queries, keys, values, self.num_heads)  # (B, M, h*d)
        pooled = self.proj(outputs).mean(dim=1)  # (B, M, C) -> (B, C)
        return (pooled, attention_layout(per_query(attention), grid)) if return_attention else pooled

    def load_reference_state_dict(self, state_dict: dict) -> None:
        """Load ``coca_pytorch.CrossAttention`` weights: ``img_queries`` (its first ``num_queries``), ``to_q``, ...

        Names: ``img_queries -> queries``, ``norm.gamma -> norm.weight`` (its ``norm.beta`` is a zero buffer),
        ``context_norm.gamma -> norm_context.weight``, ``to_q -> q``, ``to_kv -> kv``, ``to_out -> proj``.
        """
        renames = {"img_queries": "queries", "norm.gamma": "norm.weight", "context_norm.gamma": "norm_context.weight"}
        renames |= {"to_q.weight": "q.weight", "to_kv.weight": "kv.weight", "to_out.weight": "proj.weight"}
        dropped = {"norm.beta", "context_norm.beta"}
        _reject_unknown(set(state_dict) - set(renames) - dropped, "coca")
        ours = {renames[key]: value for key, value in state_dict.items() if key in renames}
        ours["queries"] = ours["queries"][: self.num_queries]
        self.load_state_dict(ours)


def _cae_attention(pool: CAEAttentivePool, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CAE's cross-attention of the query token over ``tokens (B, N, C)``: ``(B, C)`` and ``(B, h, 1, N)``."""
    B, N, C = tokens.shape  # batch, locations, channels
    query = pool.norm_q(pool.query_token).expand(B, -1, -1)  # (B, 1, C)
    k_bias = None if pool.v_bias is None else torch.zeros_like(pool.v_bias)  # CAE: no key bias
    q = F.linear(query, pool.q.weight, pool.q_bias)  # (B, 1, h*d)
    k = F.linear(pool.norm_k(tokens), pool.k.weight, k_bias)  # (B, N, h*d)
    v = F.linear(pool.norm_v(tokens), pool.v.weight, pool.v_bias)  # (B, N, h*d)
    outputs, attention = query_attention(q, k, v, pool.num_heads)  # (B, 1, h*d), (B, h, 1, N)
    return pool.proj(outputs[:, 0]), attention  # (B, C)


@register_pool("cae")
class CAEAttentivePool(Pool):
    """CAE's attentive probe (Chen et al., "Context Autoencoder for Self-Supervised Representation Learning").

    IJCV 2023.

        One learned query ``u`` (zero-initialised) and separate LayerNorms for query, keys and values:

            q = W_Q LN_q(u) + b_Q,  K = W_K LN_k(X),  V = W_V LN_v(X) + b_V
            z = W_O [softmax(q_i K_i^T / sqrt(d)) V_i]_{i=1..h} + b_O

        As efficient-probing's ``CAEAttentiveBlock`` (its ``norm2_cross`` is never used and is dropped on
        loading). Attention: ``(B, h, ...)``.

        Args:
            dim: ``C``.
            num_heads: ``h`` (8).
            qkv_bias: biases ``b_Q``, ``b_V`` (the key has none, as in CAE/BEiT).
    """

    components = Components(
        "CAE",
        "P",
        u0="U (learned)",
        phi_q="g_m(WQ LN(U))",
        phi_k="g_m(WK LN(X))",
        similarity="x⊤y",
        attention="σ2(S_i/√d), i=1..m",
        phi_v="g_m(WV LN(X))",
        phi_u="WO g_m⁻¹(Z)",
        source="Chen et al., IJCV 2023",
    )

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False):
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"dim={dim} must be a multiple of num_heads={num_heads}")
        self.num_heads, self.out_features = num_heads, dim
        self.query_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.norm_q, self.norm_k, self.norm_v = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim)) if qkv_bias else None
        self.v_bias = nn.Parameter(torch.zeros(dim)) if qkv_bias else None
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        tokens, grid = as_tokens(x)
        pooled, attention = _cae_attention(self, tokens)  # (B, C), (B, h, 1, N)
        return (pooled, attention_layout(per_query(attention), grid)) if return_attention else pooled

    def load_reference_state_dict(self, state_dict: dict) -> None:
        """Load efficient-probing's ``CAEAttentiveBlock`` weights (``norm1_q -> norm_q``, ``cross_attn.q -> q``)."""
        ours = {}
        for key, value in state_dict.items():
            if key.startswith("norm2_cross."):
                continue  # defined but unused by the reference
            name = key.replace("norm1_", "norm_").removeprefix("cross_attn.")
            ours[name] = value
        self.load_state_dict(ours)


__all__ = [
    "AttentionPoolingClassifier",
    "AttentionalPooler",
    "CAEAttentivePool",
    "EfficientProbing",
    "efficient_probing",
    "image_attention",
    "per_query",
    "query_attention",
]
