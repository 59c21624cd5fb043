"""SimPool (Algorithm 2) as plain operations in the input's own layout: the form ``torch.compile`` traces.

Eagerly, :func:`simpool.pooling.simpool.simpool` runs with its hand-written backward
(``_GeneralizedMean``). Traced by ``torch.compile`` or ``torch.export``, it runs this module instead:
plain operations that inductor fuses (LayerNorm, scores, minimum, power and weighted sum in a few
passes) and whose backward it derives, with two exceptions where autograd's own derivative costs
whole passes over the features: the minimum's gradient goes to its argmin by a scatter
(:class:`~simpool.pooling.min_over.ShiftByMin`, no full-size mask), and ``x^gamma`` is ``exp(gamma log x)`` so that its
derivative reuses the result. Measured in ``benchmarks/pool_overhead.py`` (docs/RESULTS.md, "How fast?").

Layout: a map ``(B, C, H, W)`` is processed as ``(B, C, N)`` and tokens ``(B, N, C)`` as they are,
so that no transposed copy is made and the input's gradient comes out in the input's own layout
(a transposed gradient costs one more full pass when autograd accumulates it).
Same numbers as the eager path up to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .min_over import ShiftByMin


def power(x: torch.Tensor, exponent: float) -> torch.Tensor:
    """``x^exponent`` with exact shortcuts for 1, 2 and 1/2."""
    if exponent == 1.0:
        return x
    if exponent == 2.0:
        return x * x  # one multiply instead of exp(2 log x); same backward
    if exponent == 0.5:
        return x.sqrt()
    return x.pow(exponent)


def generalized_mean(
    values: torch.Tensor, attention: torch.Tensor, gamma: float, min_over: str, *, channel_dim: int = 2
) -> torch.Tensor:
    """``u = (sum_n a_n V_n^gamma)^(1/gamma)`` with ``V = Y - min Y + eps`` (16)-(17), per head.

    Args:
        values: ``Y = LN(X)`` as ``(B, N, C)`` (``channel_dim=2``) or ``(B, C, N)`` (``channel_dim=1``).
        attention: ``(B, h, N)``; head ``j`` pools channels ``j*D ... (j+1)*D - 1``.
        gamma: exponent of ``f_alpha``.
        min_over: "sample", "batch" or "channel" (see :mod:`simpool.pooling.min_over`).

    Returns:
        ``(B, C)``.
    """
    shifted = ShiftByMin.apply(values, min_over, channel_dim)  # V = Y - min Y + eps >= eps             (16)
    # x^gamma as exp(gamma log x) when it is no square or root: its derivative, gamma x^gamma / x, reuses the
    # result instead of evaluating x^(gamma - 1), one transcendental function fewer per element.
    powered = power(shifted, gamma) if gamma in (1.0, 2.0, 0.5) else torch.exp(torch.log(shifted) * gamma)
    pooled_power = weighted_sum(attention, powered, channel_dim)  # (B, C)
    return power(pooled_power, 1.0 / gamma)  # (B, C)                                                    (17)


def weighted_sum(attention: torch.Tensor, values: torch.Tensor, channel_dim: int = 2) -> torch.Tensor:
    """Per head, the attention-weighted sum over locations of that head's channels: ``(B, h, N) -> (B, C)``.

    A product and a sum rather than a matrix product, so that inductor fuses it with what makes ``values``.
    """
    B, h, N = attention.shape  # batch, heads, locations
    C = values.shape[channel_dim]
    if channel_dim == 1:  # (B, C, N)
        per_head = values.view(B, h, C // h, N) * attention.view(B, h, 1, N)  # (B, h, D, N)
        return per_head.sum(dim=-1).view(B, C)  # (B, h, D) -> (B, C)
    per_head = values.view(B, N, h, C // h) * attention.transpose(1, 2).view(B, N, h, 1)  # (B, N, h, D)
    return per_head.sum(dim=1).reshape(B, C)  # (B, h, D) -> (B, C)


def simpool_graph(
    x: torch.Tensor,
    *,
    norm_weight: torch.Tensor | None,
    norm_bias: torch.Tensor | None,
    q_weight: torch.Tensor,
    k_weight: torch.Tensor,
    q_bias: torch.Tensor | None,
    k_bias: torch.Tensor | None,
    beta: torch.Tensor | None,
    num_heads: int,
    gamma: float | None,
    min_over: str,
    norm_eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 2 in the input's layout, in the compute dtype; the arguments of :func:`~simpool.pooling.simpool`.

    Returns:
        ``(pooled, attention)``: ``(B, C)`` and ``(B, num_heads, N)``.
    """
    channel_dim, location_dim = (1, 2) if x.ndim == 4 else (2, 1)
    features = x.flatten(2) if x.ndim == 4 else x  # (B, C, N) for a map, (B, N, C) for tokens
    B, C, N = features.shape[0], features.shape[channel_dim], features.shape[location_dim]  # batch, channels, locations
    h = num_heads
    D = C // h  # channels per head

    def per_channel(vector: torch.Tensor) -> torch.Tensor:  # (C,) or (B, C) -> broadcastable to features
        vector = vector.view(-1, C)  # (1 or B, C)
        return vector.unsqueeze(-1) if channel_dim == 1 else vector.unsqueeze(1)  # (., C, 1) or (., 1, C)

    u0 = features.mean(dim=location_dim)  # (B, C)                                                       (12)
    q = F.linear(u0, q_weight, q_bias)  # (B, C)                                                          (13)
    # W_K^T q per head, scaled: the scores LN(X) r equal K^T q / sqrt(D) without forming K.
    r = torch.einsum("bhd,hdc->bhc", q.view(B, h, D), k_weight.view(h, D, C)) * D**-0.5  # (B, h, C)
    mean = features.mean(dim=channel_dim, keepdim=True)  # per location: (B, 1, N) or (B, N, 1)
    centred = features - mean
    rstd = torch.rsqrt(centred.square().mean(dim=channel_dim, keepdim=True) + norm_eps)  # per location
    values = centred * rstd  # LN(X) without its affine map
    if norm_weight is not None:
        values = values * per_channel(norm_weight)
    if norm_bias is not None:
        values = values + per_channel(norm_bias)  # LN(X): (B, C, N) or (B, N, C)                      (14)
    # every head's scores sum over all C channels of LN(X): r holds W_K^T q of the head's D rows of W_K
    if channel_dim == 1:  # (B, 1, C, N) x (B, h, C, 1) summed over C -> (B, h, N)
        scores = (values.view(B, 1, C, N) * r.view(B, h, C, 1)).sum(dim=2)
    else:  # (B, N, 1, C) x (B, 1, h, C) summed over C -> (B, N, h) -> (B, h, N)
        scores = (values.view(B, N, 1, C) * r.view(B, 1, h, C)).sum(dim=-1).transpose(1, 2)
    if k_bias is not None:
        offset = (q.view(B, h, D) * k_bias.view(h, D)).sum(-1) * D**-0.5  # q . b_K: (B, h)
        scores = scores + offset.unsqueeze(-1)  # (B, h, N)
    attention = scores.softmax(dim=-1)  # over locations: (B, h, N)                                     (15)
    if gamma is None:
        pooled = weighted_sum(attention, values, channel_dim)  # (B, C)
    else:
        pooled = generalized_mean(values, attention, gamma, min_over, channel_dim=channel_dim)  # (B, C) (16)-(17)
    if beta is not None:
        pooled = pooled + beta
    return pooled, attention
