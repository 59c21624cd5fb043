"""The generic pooling framework of the paper (Section 3.1, Algorithm 1) and the components of Table 1.

Algorithm 1, with features ``X`` (``d x p``) and ``k`` pooled vectors::

    U^0 = INIT(X)                                   initialisation
    for t = 0 .. T-1:
        Q = phi_Q^t(U^t),  K = phi_K^t(X^t)          (1), (2)  query, key
        S = (s(k_i, q_j))_{ij}                       pairwise similarity
        A = h(S)                                     (3)  attention
        V = phi_V^t(X^t)                             (4)  value
        Z = f^{-1}(f(V) A)                           (5)  attention-weighted pooling
        X^{t+1} = phi_X^t(X^t),  U^{t+1} = phi_U^t(Z)  (6), (7)

:class:`PoolingFramework` implements it with the options of Table 10 as arguments; its defaults are
SimPool (Algorithm 2). Every pool declares its components (:class:`Components`) so that
``simpool landscape`` prints Table 1 from the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .assignment import hard_assignment, kmeans, normalize_locations, sinkhorn
from .base import Pool, as_tokens, attention_layout
from .min_over import SHIFT_EPS, value_min
from .registry import register_pool


@dataclass(frozen=True)
class Components:
    """One row of Table 1: a pooling method as an instance of Algorithm 1.

    Attributes:
        method: display name.
        group: Table 1 group (1 simple, 2 iterative k > 1, 3 re-weighting, 4 transformers, 5 SimPool).
        cat: used in category-level tasks.
        iterative: iterates over ``t`` (ITER).
        k: number of pooled vectors.
        u0, phi_q, phi_k, similarity, attention, phi_v, f, phi_x, phi_u: the components of Algorithm 1
            in the paper's notation ("" where the method has none).
        source: the paper that introduced the method.
    """

    method: str
    group: int | str
    cat: bool = True
    iterative: bool = False
    k: str = "1"
    u0: str = ""
    phi_q: str = ""
    phi_k: str = ""
    similarity: str = ""
    attention: str = ""
    phi_v: str = "X"
    f: str = "f_-1(x)"
    phi_x: str = ""
    phi_u: str = "Z"
    source: str = ""


_DECLARED: dict[str, Components | Callable[[], Components]] = {}


def declare_components(name: str, components: Components | Callable[[], Components]) -> None:
    """Declare the components of a registered pool whose class does not carry a ``components`` attribute; a
    callable is evaluated when they are asked for (nothing is built at import time)."""
    _DECLARED[name] = components


def components_of(name: str, constructor: Callable | None = None) -> Components | None:
    """The declared components of the pool registered as ``name`` (None when it declares none)."""
    declared = getattr(constructor, "components", None)
    if isinstance(declared, Components):
        return declared
    declared = _DECLARED.get(name)
    return declared() if callable(declared) else declared


# --- similarity s(x, y) of queries (B, m, k, D) and keys (B, m, N, D) -> (B, m, k, N) -------------


def dot_similarity(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """``s(x, y) = x^T y``, scaled by ``1/sqrt(D)`` as in transformers (15)."""
    return queries @ keys.transpose(-1, -2) * queries.shape[-1] ** -0.5  # (B, m, k, N)


def neg_squared_l2_similarity(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """``s(x, y) = -||x - y||^2``, scaled by ``1/sqrt(D)`` like the dot product."""
    dot = queries @ keys.transpose(-1, -2)  # (B, m, k, N)
    squared = 2 * dot - queries.square().sum(-1, keepdim=True) - keys.square().sum(-1).unsqueeze(-2)
    return squared * queries.shape[-1] ** -0.5


def cosine_similarity(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """``s(x, y) = x^T y / (||x|| ||y||)``, in [-1, 1], not scaled."""
    return nn.functional.normalize(queries, dim=-1) @ nn.functional.normalize(keys, dim=-1).transpose(-1, -2)


SIMILARITIES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "dot": dot_similarity,
    "neg_sqdist": neg_squared_l2_similarity,
    "cosine": cosine_similarity,
}

# --- attention function h on scores (B, m, k, N) -> (B, m, k, N), each row summing to 1 over N -----


def softmax_attention(scores: torch.Tensor) -> torch.Tensor:
    """``sigma_2(S)``: softmax over locations (15)."""
    return scores.softmax(dim=-1)


def sigmoid_attention(scores: torch.Tensor) -> torch.Tensor:
    """``eta_2(sigma(S))``: sigmoid, then normalisation over locations (Table 10 left, h(S) ablation)."""
    return normalize_locations(scores.sigmoid())


def slot_attention(scores: torch.Tensor) -> torch.Tensor:
    """Slot Attention (B21): softmax over the k vectors (competition), then normalisation over locations."""
    return normalize_locations(scores.softmax(dim=-2) + 1e-8)


def hard_attention(scores: torch.Tensor) -> torch.Tensor:
    """k-means (B20): ``eta_2(argmax_1(S))``, a hard assignment of each location to one vector."""
    return hard_assignment(scores)


def sinkhorn_attention(scores: torch.Tensor, eps: float = 0.1, iterations: int = 3) -> torch.Tensor:
    """OTK (B14): ``eta_2(SINKHORN(exp(S / eps)))``: the transport plan, normalised per vector."""
    lead = scores.shape[:-2]
    plan = sinkhorn(scores.flatten(0, -3) / eps, iterations)  # (B*m, k, N)
    return normalize_locations(plan).view(*lead, *plan.shape[-2:])


ATTENTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "softmax": softmax_attention,
    "sigmoid": sigmoid_attention,
    "slot": slot_attention,
    "hard": hard_attention,
    "sinkhorn": sinkhorn_attention,
}

# --- initialisation U^0 from tokens (B, N, C) -> (B, k, C) ------------------------------------------

INITS = ("gap", "learnable", "norm", "kmeans")
COMBINES = ("max", "concat")


def _check_choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(choices)}")


def _check_subset(name: str, value: str) -> None:
    if not set(value) <= set("qkv"):
        raise ValueError(f"{name} must be letters among 'qkv' (e.g. 'qk'), got {value!r}")


class _Mappings(nn.Module):
    """``phi_Q``, ``phi_K``, ``phi_V`` of one iteration: linear or identity."""

    def __init__(self, dim: int, linear: str, qkv_bias: bool, share_qk: bool):
        super().__init__()
        self.q = nn.Linear(dim, dim, bias=qkv_bias) if "q" in linear else nn.Identity()
        self.k = self.q if share_qk else (nn.Linear(dim, dim, bias=qkv_bias) if "k" in linear else nn.Identity())
        self.v = nn.Linear(dim, dim, bias=qkv_bias) if "v" in linear else nn.Identity()


@register_pool("framework")
class PoolingFramework(Pool):
    """Algorithm 1 of the paper with the options of Table 10; the defaults are SimPool (Algorithm 2).

    ``U^0 = INIT(X)``; per iteration ``Q = phi_Q(U)``, ``K = phi_K(X)``, ``A = h(s(K, Q))``,
    ``V = phi_V(X)``, ``Z = f^{-1}(f(V) A)``, ``U = Z`` (eqs. (1)-(7)); with ``phi_Q = W_Q LN_q``,
    ``phi_K = W_K LN``, ``phi_V = W_V LN`` where each linear or LayerNorm is switched on by name, and
    ``f = f_alpha`` (8) of exponent ``gamma`` on ``V - min V`` (16), or the mean when ``gamma`` is None.

    Args:
        dim: channels ``d`` of the features.
        num_vectors: ``k``, pooled vectors. ``k > 1`` needs ``init`` "kmeans" or "learnable".
        init: ``U^0``: "gap" (``pi_A(X)``, (12)), "learnable" (a parameter ``U``), "norm"
            (``diag(X^T X)``: the features averaged with weights their squared norms, as HOW's
            attention (B10)), "kmeans" (k-means centroids, Table 10 "k").
        iterations: ``T``.
        share_parameters: one set of mappings for all iterations (True) or one per iteration (False);
            the two ablation rows "LAYERS" and "ITER" of Table 10.
        num_heads: ``m``, heads splitting the channels (``g_m`` of (B41)); Table 10 uses 4.
        linear: which of query, key, value get a linear map, e.g. "qk" (SimPool), "qkv", "".
        norm: which get a LayerNorm: "kv" (SimPool: one LayerNorm on ``X`` for keys and values), "q"
            normalises ``U`` before ``W_Q``.
        share_qk: ``W_Q = W_K`` (one matrix).
        similarity: ``s``: "dot", "neg_sqdist", "cosine".
        attention: ``h``: "softmax" (over locations), "sigmoid" (then normalised over locations),
            "slot", "hard", "sinkhorn".
        gamma: exponent of ``f_alpha`` (``gamma = (1 - alpha) / 2``); None: ``f = id`` (average).
        combine: with ``k > 1``, "max" returns ``(B, k, C)`` (the classifier takes the maximum of the
            k logits per class) and "concat" concatenates and projects back to ``dim``.
        qkv_bias: biases on the linear maps.
        norm_eps: LayerNorm epsilon (1e-6 as SimPool).
        seed: seed of the k-means initialisation in eval mode (deterministic); training draws anew.
    """

    def __init__(
        self,
        dim: int,
        num_vectors: int = 1,
        init: str = "gap",
        iterations: int = 1,
        share_parameters: bool = True,
        num_heads: int = 1,
        linear: str = "qk",
        norm: str = "kv",
        share_qk: bool = False,
        similarity: str = "dot",
        attention: str = "softmax",
        gamma: float | None = None,
        combine: str = "max",
        qkv_bias: bool = False,
        norm_eps: float = 1e-6,
        seed: int = 0,
    ):
        super().__init__()
        _check_choice("init", init, INITS)
        _check_choice("similarity", similarity, SIMILARITIES)
        _check_choice("attention", attention, ATTENTIONS)
        _check_choice("combine", combine, COMBINES)
        _check_subset("linear", linear)
        _check_subset("norm", norm)
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"dim={dim} must be a positive multiple of num_heads={num_heads}")
        if num_vectors < 1 or iterations < 1:
            raise ValueError(f"num_vectors and iterations must be >= 1, got {num_vectors}, {iterations}")
        if num_vectors > 1 and init in ("gap", "norm"):
            raise ValueError(f"init={init!r} gives k identical vectors; use 'kmeans' or 'learnable' for k > 1")
        if share_qk and not {"q", "k"} <= set(linear):
            raise ValueError("share_qk needs linear maps on both query and key (linear='qk...')")
        if gamma is not None and not gamma > 0:
            raise ValueError(f"gamma must be positive or None, got {gamma}")
        self.dim = dim
        self.num_heads, self.iterations, self.init, self.combine = num_heads, iterations, init, combine
        self.similarity, self.attention, self.seed = similarity, attention, seed
        self.gamma = None if gamma is None else float(gamma)
        self.norm_on, self.linear_on, self.share_qk, self.share_parameters = norm, linear, share_qk, share_parameters
        self.k_vectors = num_vectors
        self.num_vectors = num_vectors if combine == "max" else 1
        self.out_features = dim
        self.norm = nn.LayerNorm(dim, eps=norm_eps) if {"k", "v"} & set(norm) else None
        self.norm_q = nn.LayerNorm(dim, eps=norm_eps) if "q" in norm else nn.Identity()
        count = 1 if share_parameters else iterations
        self.layers = nn.ModuleList(_Mappings(dim, linear, qkv_bias, share_qk) for _ in range(count))
        self.vectors = nn.Parameter(torch.randn(num_vectors, dim) * 0.02) if init == "learnable" else None
        self.proj = nn.Linear(num_vectors * dim, dim) if combine == "concat" and num_vectors > 1 else None

    def initial_vectors(self, tokens: torch.Tensor) -> torch.Tensor:
        """``U^0``: ``(B, N, C) -> (B, k, C)``."""
        B, N, C = tokens.shape  # batch, locations, channels
        if self.init == "gap":
            return tokens.mean(dim=1, keepdim=True)  # (B, 1, C)   (12)
        if self.init == "norm":
            weights = normalize_locations(tokens.square().sum(-1))  # diag(X^T X), normalised: (B, N)
            return torch.bmm(weights.unsqueeze(1), tokens)  # (B, 1, N) x (B, N, C) -> (B, 1, C)
        if self.init == "learnable":
            return self.vectors.expand(B, -1, -1)  # (B, k, C)
        seed = None if self.training else self.seed  # eval: seeded noise, compiles as one graph
        centroids, _ = kmeans(tokens, self.k_vectors, seed=seed)  # (B, k, C)
        return centroids

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        tokens, grid = as_tokens(x)
        B, N, C = tokens.shape  # batch, locations, channels
        if C != self.dim:
            raise ValueError(f"PoolingFramework(dim={self.dim}) got features of shape {tuple(x.shape)}")
        m, D = self.num_heads, C // self.num_heads  # heads, channels per head
        normed = tokens if self.norm is None else self.norm(tokens)  # LN(X): (B, N, C)
        keys_in = normed if "k" in self.norm_on else tokens
        values_in = normed if "v" in self.norm_on else tokens
        vectors = self.initial_vectors(tokens)  # U^0: (B, k, C)
        k = vectors.shape[1]

        def keys_values(maps: _Mappings) -> tuple[torch.Tensor, torch.Tensor]:  # (2) and (4), f: apart from U^t
            keys = maps.k(keys_in).view(B, N, m, D).transpose(1, 2)  # (B, m, N, D)                     (2)
            values = maps.v(values_in)  # (B, N, C)                                                     (4)
            if self.gamma is not None:
                values = (values - value_min(values, "sample") + SHIFT_EPS) ** self.gamma  # (16), f
            return keys, values

        if self.share_parameters:  # one set of maps: keys and values are the same at every iteration
            keys, values = keys_values(self.layers[0])
        for t in range(self.iterations):
            maps = self.layers[0 if self.share_parameters else t]
            if not self.share_parameters:
                keys, values = keys_values(maps)
            queries = maps.q(self.norm_q(vectors)).view(B, k, m, D).transpose(1, 2)  # (B, m, k, D)   (1)
            attention = ATTENTIONS[self.attention](SIMILARITIES[self.similarity](queries, keys))  # (B, m, k, N) (3)
            pooled = attention @ values.view(B, N, m, D).transpose(1, 2)  # (B, m, k, N) x (B, m, N, D) -> (B, m, k, D)
            if self.gamma is not None:
                pooled = pooled ** (1.0 / self.gamma)  # f^{-1}                                          (5)
            vectors = pooled.permute(0, 2, 1, 3).reshape(B, k, C)  # U^{t+1} = Z: (B, k, C)             (7)
        if self.proj is not None:
            pooled_out = self.proj(vectors.flatten(1))  # (B, k*C) -> (B, C)
        else:
            pooled_out = vectors[:, 0] if k == 1 else vectors  # (B, C) or (B, k, C)
        if return_attention:
            maps_out = attention.transpose(1, 2).reshape(B, k * m, N)  # (B, k*m, N), vector-major
            return pooled_out, attention_layout(maps_out, grid)
        return pooled_out

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, k={self.k_vectors}, init={self.init!r}, T={self.iterations}, heads={self.num_heads}, "
            f"linear={self.linear_on!r}, norm={self.norm_on!r}, s={self.similarity!r}, h={self.attention!r}, "
            f"gamma={self.gamma}"
        )


def framework_components(pool: PoolingFramework, method: str = "framework", group: int | str = "A") -> Components:
    """Table 1 components of a framework configuration, in the paper's notation."""
    heads = pool.num_heads > 1

    def mapping(letter: str, argument: str) -> str:
        text = f"W{letter.upper()}{argument}" if letter in pool.linear_on else argument
        if letter == "k" and pool.share_qk:
            text = f"WQ{argument}"
        return f"g_m({text})" if heads else text

    x_in = {"k": "LN(X)" if "k" in pool.norm_on else "X", "v": "LN(X)" if "v" in pool.norm_on else "X"}
    value = mapping("v", x_in["v"]) if "v" in pool.linear_on else x_in["v"]
    attention = {
        "softmax": "σ2(S/√d)",
        "sigmoid": "η2(σ(S/√d))",
        "slot": "η2(σ1(S/√d))",
        "hard": "η2(argmax1(S))",
        "sinkhorn": "SINKHORN(e^{S/ϵ})",
    }[pool.attention]
    return Components(
        method=method,
        group=group,
        iterative=pool.iterations > 1,
        k=str(pool.k_vectors),
        u0={"gap": "πA(X)", "learnable": "U", "norm": "diag(X⊤X)", "kmeans": "k-means(X)"}[pool.init],
        phi_q=mapping("q", "LN(U)" if "q" in pool.norm_on else "U"),
        phi_k=mapping("k", x_in["k"]),
        similarity={"dot": "x⊤y", "neg_sqdist": "−‖x−y‖²", "cosine": "cos(x,y)"}[pool.similarity],
        attention=f"{attention} (m={pool.num_heads})" if heads else attention,
        phi_v=f"{value} − min {value}" if pool.gamma is not None else value,
        f="f_-1(x)" if pool.gamma is None else f"f_α(x), γ={pool.gamma:g}",
        phi_u="Z" if pool.proj is None else "W(concat Z)",
        source="Algorithm 1 (this paper)",
    )


SIMPOOL_OPTIONS = dict(init="gap", iterations=1, num_heads=1, linear="qk", norm="kv", similarity="dot")


def simpool_framework(dim: int, gamma: float | None = 2.0, **overrides) -> PoolingFramework:
    """The framework configured as SimPool (Algorithm 2); ``overrides`` give a Table 10 ablation row."""
    return PoolingFramework(dim, gamma=gamma, **{**SIMPOOL_OPTIONS, **overrides})


def _described(pool: Callable[[], PoolingFramework], method: str, group: int | str = "A", **fields) -> Callable:
    """Components of a configuration, built on the meta device when asked for (no memory, no RNG draw)."""

    def describe() -> Components:
        with torch.device("meta"):
            components = framework_components(pool(), method, group)
        return Components(**{**components.__dict__, **fields})

    return describe


declare_components("framework", _described(lambda: PoolingFramework(8), "Algorithm 1 (SimPool defaults)"))
declare_components(
    "simpool",
    _described(lambda: simpool_framework(8, gamma=2.0), "SimPool", 5, f="f_α(x)", source="Psomas et al., ICCV 2023"),
)
