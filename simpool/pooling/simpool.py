"""SimPool (Psomas et al., "Keep It SimPool", ICCV 2023): Algorithm 2, computed without the key matrix.

Paper notation, features ``X`` of ``d`` channels at ``p`` locations:

    u0 = pi_A(X) = X 1_p / p                                  (12)  GAP initialisation
    q  = W_Q u0                                               (13)  query
    K  = W_K LN(X)                                            (14), (B52)  keys
    a  = softmax(K^T q / sqrt(d))   over the p locations      (15)  attention
    V  = LN(X) - min LN(X)                                    (16), (B53)  values, shifted >= 0
    u  = f_alpha^{-1}(f_alpha(V) a),  f_alpha(x) = x^gamma    (17), (8)    gamma = (1 - alpha) / 2

``K`` is never materialised: ``K^T q = LN(X) (W_K^T q) + q . b_K``, a matrix-vector product per
image. The direct formula is kept in :func:`simpool_direct` as the reference.
"""

from __future__ import annotations

import contextlib
import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from .base import Pool, as_tokens, attention_layout
from .min_over import SHIFT_EPS, add_min_grad, argmin, group_dims, shift, value_min
from .registry import register_pool
from .simpool_graph import power, simpool_graph


def _check(dim: int, num_heads: int, gamma: float | None, min_over: str) -> None:
    if num_heads < 1 or dim % num_heads:
        raise ValueError(f"dim={dim} must be a positive multiple of num_heads={num_heads}")
    real = isinstance(gamma, numbers.Real) and not isinstance(gamma, bool)
    if gamma is not None and not (real and math.isfinite(gamma) and gamma > 0):
        # inf would pool to exactly 1 everywhere (V^inf, then inf^(1/inf) = 1); strings would fail deep inside
        raise ValueError(f"gamma must be a positive finite number or None, got {gamma!r}")
    group_dims(min_over)  # raises for a name that is not one of MIN_OVER


def _weighted_sum(attention: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Per head, the attention-weighted sum of that head's channels: ``(B, h, N), (B, N, C) -> (B, C)``."""
    B, h, N = attention.shape  # batch, heads, locations
    C = values.shape[-1]
    if h == 1:
        return torch.bmm(attention, values).view(B, C)  # (B, 1, N) x (B, N, C) -> (B, C)
    per_head = values.view(B, N, h, C // h)  # (B, N, h, D)
    return torch.einsum("bhn,bnhd->bhd", attention, per_head).reshape(B, C)  # (B, h, D) -> (B, C)


def _outer(attention: torch.Tensor, pooled_grad: torch.Tensor) -> torch.Tensor:
    """``P[b, n, c] = a[b, head(c), n] * g[b, c]``: ``(B, h, N), (B, C) -> (B, N, C)``."""
    B, h, N = attention.shape  # batch, heads, locations
    C = pooled_grad.shape[-1]
    if h == 1:
        return torch.bmm(attention.transpose(1, 2), pooled_grad.view(B, 1, C))  # (B, N, 1) x (B, 1, C) -> (B, N, C)
    per_head = pooled_grad.view(B, h, 1, C // h)  # (B, h, 1, D)
    return (attention.unsqueeze(-1) * per_head).permute(0, 2, 1, 3).reshape(B, N, C)  # (B, h, N, D) -> (B, N, C)


def _attention_grad(pooled_grad: torch.Tensor, powered: torch.Tensor, h: int) -> torch.Tensor:
    """``d a[b, h, n] = sum_{c in head h} g[b, c] V^gamma[b, n, c]``: ``(B, C), (B, N, C) -> (B, h, N)``."""
    B, N, C = powered.shape  # batch, locations, channels
    if h == 1:
        return torch.bmm(pooled_grad.view(B, 1, C), powered.transpose(1, 2))  # (B, 1, C) x (B, C, N) -> (B, 1, N)
    return torch.einsum("bhd,bnhd->bhn", pooled_grad.view(B, h, C // h), powered.view(B, N, h, C // h))


class _GeneralizedMean(torch.autograd.Function):
    """``u = (sum_n a_n (V_n)^gamma)^(1/gamma)`` with ``V = Y - min Y + eps``, forward and backward fused.

    Autograd's own graph keeps ``V``, ``V^gamma`` and a full-size mask for the minimum, and evaluates
    ``x^(gamma-1)`` again in the backward pass. Here the forward keeps ``V^gamma`` only, the
    backward recomputes ``V`` in one pass and gets ``V^(gamma-1) = V^gamma / V`` by a division, and
    the minimum's gradient goes to its argmin by a scatter (one subgradient where elements tie).
    """

    @staticmethod
    def forward(ctx, values, attention, gamma: float, min_over: str):
        m, index = argmin(values, min_over)
        shifted = shift(values, m)  # V >= eps: (B, N, C)                                 (16)
        powered = _power_(shifted, gamma)  # V^gamma, in place for gamma != 1
        pooled_power = _weighted_sum(attention, powered)  # (B, C)
        pooled = power(pooled_power, 1.0 / gamma)  # (B, C)                               (17)
        ctx.save_for_backward(values, attention, powered, m, index, pooled_power, pooled)
        ctx.gamma, ctx.min_over = gamma, min_over
        return pooled

    @staticmethod
    def backward(ctx, grad):
        values, attention, powered, m, index, pooled_power, pooled = ctx.saved_tensors
        gamma, h = ctx.gamma, attention.shape[1]
        # d u / d z = u / (gamma z), with z the pooled power: (B, C)
        grad_power = grad * pooled / (gamma * pooled_power)
        grad_attention = _attention_grad(grad_power, powered, h) if ctx.needs_input_grad[1] else None
        grad_values = None
        if ctx.needs_input_grad[0]:
            grad_values = _outer(attention, grad_power * gamma)  # (B, N, C)
            if gamma != 1.0:  # gamma V^(gamma-1) = gamma V^gamma / V
                shifted = shift(values, m)
                grad_values.mul_(shifted if gamma == 2.0 else powered / shifted)
            grad_values = add_min_grad(grad_values, index, ctx.min_over, in_place=True)
        return grad_values, grad_attention, None, None


def _power_(x: torch.Tensor, exponent: float) -> torch.Tensor:
    """``x^exponent`` in place (x is a temporary)."""
    if exponent == 1.0:
        return x
    if exponent == 2.0:
        return x.square_()
    return x.pow_(exponent)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    # LayerNorm statistics, the softmax and x^gamma run in float32 for half-precision inputs:
    # (x - min)^gamma with gamma up to 5 leaves fp16's range, and bf16 keeps 8 bits of mantissa.
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _no_autocast(x: torch.Tensor):
    device_type = x.device.type
    if device_type in ("cpu", "cuda") and torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def simpool(
    x: torch.Tensor,
    norm_weight: torch.Tensor | None,
    norm_bias: torch.Tensor | None,
    q_weight: torch.Tensor,
    k_weight: torch.Tensor,
    q_bias: torch.Tensor | None = None,
    k_bias: torch.Tensor | None = None,
    beta: torch.Tensor | None = None,
    num_heads: int = 1,
    gamma: float | None = None,
    min_over: str = "sample",
    norm_eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SimPool as a pure function (Algorithm 2), the efficient way.

    Args:
        x: features ``(B, C, H, W)`` or tokens ``(B, N, C)``.
        norm_weight, norm_bias: LayerNorm affine parameters (``C``) or None.
        q_weight, k_weight: ``W_Q``, ``W_K`` of shape ``(C, C)`` (``nn.Linear`` layout).
        q_bias, k_bias: optional biases. The key bias adds ``q . b_K`` to every score of an image, a
            constant that the softmax ignores; it is kept so that the scores equal ``K^T q`` exactly.
        beta: optional learnable offset added to the output (the official ``use_beta``).
        num_heads: heads splitting the channels; each head's attention pools its channels.
        gamma: exponent of ``f_alpha``; None is the plain attention-weighted average of ``LN(X)``.
        min_over: where the value's minimum is taken, see :class:`SimPool`.
        norm_eps: LayerNorm epsilon.

    Returns:
        ``(pooled, attention)``: ``(B, C)`` and ``(B, num_heads, N)``.
    """
    dtype = _compute_dtype(x)
    with _no_autocast(x):
        weights = dict(norm_weight=norm_weight, norm_bias=norm_bias, q_weight=q_weight, k_weight=k_weight)
        weights |= dict(q_bias=q_bias, k_bias=k_bias, beta=beta)
        weights = {name: None if p is None else p.to(dtype) for name, p in weights.items()}
        # Under torch.compile, plain operations that inductor fuses (simpool_graph.py); eagerly, the hand-written
        # backward (benchmarks/pool_overhead.py, docs/RESULTS.md). torch.export takes the eager operations, so an
        # exported program gives the eager numbers exactly, with ONNX's LayerNormalization and MatMul.
        traced = torch.compiler.is_compiling() and not torch.compiler.is_exporting()
        compute = simpool_graph if traced else _simpool_eager
        settings = dict(num_heads=num_heads, gamma=gamma, min_over=min_over, norm_eps=norm_eps)
        pooled, attention = compute(x.to(dtype), **weights, **settings)
    return pooled.to(x.dtype), attention.to(x.dtype)


def _simpool_eager(
    x, *, norm_weight, norm_bias, q_weight, k_weight, q_bias, k_bias, beta, num_heads, gamma, min_over, norm_eps
):
    """:func:`simpool` eagerly, all tensors in the compute dtype: tokens ``(B, N, C)`` and ``_GeneralizedMean``."""
    tokens, _ = as_tokens(x)
    B, N, C = tokens.shape  # batch, locations, channels
    h = num_heads
    D = C // h  # channels per head
    u0 = tokens.mean(dim=1)  # (B, C)                                                 (12)
    q = F.linear(u0, q_weight, q_bias)  # (B, C)                                      (13)
    # W_K^T q per head, scaled: scores = LN(X) r equals K^T q / sqrt(D) without forming K.
    r = torch.einsum("bhd,hdc->bhc", q.view(B, h, D), k_weight.view(h, D, C)) * D**-0.5  # (B, h, C)
    values = F.layer_norm(tokens, (C,), norm_weight, norm_bias, norm_eps)  # LN(X): (B, N, C)
    scores = torch.bmm(values, r.transpose(1, 2))  # (B, N, C) x (B, C, h) -> (B, N, h)   (14)
    if k_bias is not None:
        offset = (q.view(B, h, D) * k_bias.view(h, D)).sum(-1) * D**-0.5  # q . b_K: (B, h)
        scores = scores + offset.unsqueeze(1)  # (B, N, h)
    attention = scores.softmax(dim=1).transpose(1, 2)  # over locations: (B, h, N)           (15)
    if gamma is None:
        pooled = _weighted_sum(attention, values)  # (B, C)
    else:
        pooled = _GeneralizedMean.apply(values, attention, gamma, min_over)  # (B, C)         (16)-(17)
    if beta is not None:
        pooled = pooled + beta
    return pooled, attention


def simpool_direct(pool: SimPool, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The same numbers by the direct formula, materialising ``K = W_K LN(X)`` (reference and cost baseline)."""
    tokens, _ = as_tokens(x)
    B, N, C = tokens.shape  # batch, locations, channels
    h, D = pool.num_heads, C // pool.num_heads
    u0 = tokens.mean(dim=1)  # (B, C)
    values = pool.norm(tokens)  # (B, N, C)
    q = pool.q(u0).view(B, h, D, 1)  # (B, h, D, 1)
    keys = pool.k(values).view(B, N, h, D).transpose(1, 2)  # (B, h, N, D)
    attention = torch.softmax((keys @ q).squeeze(-1) * D**-0.5, dim=-1)  # (B, h, N)
    if pool.gamma is not None:
        values = (values - value_min(values, pool.min_over) + SHIFT_EPS) ** pool.gamma  # (16)
    pooled = (attention.unsqueeze(-1) * values.view(B, N, h, D).transpose(1, 2)).sum(2)  # (B, h, D)
    pooled = pooled.reshape(B, C)
    if pool.gamma is not None:
        pooled = pooled ** (1.0 / pool.gamma)
    if pool.beta is not None:
        pooled = pooled + pool.beta
    return pooled, attention


@register_pool("simpool")
class SimPool(Pool):
    """SimPool: GAP query, cross-attention over locations, generalized-mean pooling of the values.

    ``u = f_alpha^{-1}(f_alpha(V) a)`` with ``a = softmax(LN(X)^T W_K^T W_Q GAP(X) / sqrt(d))`` and
    ``V = LN(X) - min LN(X)`` (paper eqs. (12)-(17), (B52)-(B53), Algorithm 2).

    Args:
        dim: channels ``d`` of the features.
        num_heads: heads ``m`` (the paper and every official model use 1).
        gamma: ``gamma = (1 - alpha) / 2`` of ``f_alpha(x) = x^gamma``; the paper uses 2 for CNNs and
            1.25 for transformers. None pools ``LN(X)`` by a plain weighted average (no shift).
        qkv_bias: biases on ``W_Q`` and ``W_K``.
        norm_eps: LayerNorm epsilon: 1e-6 as the official code; timm's ``SimPool2d`` uses 1e-5.
        min_over: where ``min LN(X)`` of the value (16) is taken:
            ``"sample"`` (the paper, default): over all elements of one image's features, so an
            image's output never depends on the rest of the batch;
            ``"batch"`` (the official code): one minimum over the whole batch;
            ``"channel"`` (timm's ``SimPool2d``): per image and channel, over locations.
            In every mode ``1e-6`` is added after the shift and the shift is not added back, as in
            both implementations.
        use_beta: a learnable scalar ``beta`` (init 0) added to the output, as the official
            self-supervised ViT does. Unlike the official code it is also created without gamma.

    Parameter names are timm's ``SimPool2d``'s (``norm``, ``q``, ``k``), so weights interchange.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 1,
        gamma: float | None = None,
        qkv_bias: bool = False,
        norm_eps: float = 1e-6,
        min_over: str = "sample",
        use_beta: bool = False,
    ):
        super().__init__()
        _check(dim, num_heads, gamma, min_over)
        self.dim = self.out_features = dim
        self.num_heads = num_heads
        self.gamma = None if gamma is None else float(gamma)
        self.min_over = min_over
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.beta = nn.Parameter(torch.zeros(1)) if use_beta else None

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        if x.ndim not in (3, 4) or x.shape[-1 if x.ndim == 3 else 1] != self.dim:
            raise ValueError(f"SimPool(dim={self.dim}) got features of shape {tuple(x.shape)}")
        if (x.shape[1] if x.ndim == 3 else x.shape[-2] * x.shape[-1]) == 0:
            raise ValueError(f"SimPool got features with no locations to pool: shape {tuple(x.shape)}")
        pooled, attention = simpool(
            x,
            self.norm.weight,
            self.norm.bias,
            self.q.weight,
            self.k.weight,
            q_bias=self.q.bias,
            k_bias=self.k.bias,
            beta=self.beta,
            num_heads=self.num_heads,
            gamma=self.gamma,
            min_over=self.min_over,
            norm_eps=self.norm.eps,
        )
        if return_attention:
            return pooled, attention_layout(attention, x.shape[-2:] if x.ndim == 4 else None)
        return pooled

    def load_reference_state_dict(self, state_dict: dict) -> None:
        """Load efficient-probing's ``SimPool`` (or the official code's) strictly: ``norm_patches -> norm``,
        ``wq -> q``, ``wk -> k``; ``beta`` as it is."""
        renames = (("norm_patches.", "norm."), ("wq.", "q."), ("wk.", "k."))
        ours = {}
        for key, value in state_dict.items():
            for old, new in renames:
                key = key.replace(old, new, 1) if key.startswith(old) else key
            ours[key] = value
        self.load_state_dict(ours)

    def keys(self, x: torch.Tensor) -> torch.Tensor:
        """The keys ``K = W_K LN(X)`` of (B52) as tokens ``(B, N, C)``, materialised on demand (e.g. for LOST)."""
        tokens, _ = as_tokens(x)
        return self.k(self.norm(tokens))  # (B, N, C)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}, gamma={self.gamma}, min_over={self.min_over!r}"
