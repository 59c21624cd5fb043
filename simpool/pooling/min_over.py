"""SimPool's ``min_over`` rule: where the minimum ``min LN(X)`` of the value (16)/(B53) is taken, in one place.

``V = Y - min Y + eps`` with ``Y = LN(X)`` keeps the values ``>= eps`` so that ``V^gamma`` is defined. The
minimum is taken over a group of elements of the features ``(B, N, C)`` (or ``(B, C, N)``, a map kept in its
own layout):

- ``"sample"`` (the paper): all elements of one image, dimensions 1 and 2;
- ``"batch"`` (the official code): all elements of the batch, dimensions 0 to 2;
- ``"channel"`` (timm's ``SimPool2d``): one image and one channel, over the locations (dimension
  ``3 - channel_dim``).

Every group is a run of adjacent dimensions, so ``values.flatten(first, last)`` makes it one dimension and one
``min`` finds both the minimum and where it is. The eager path (``simpool.py``), the compiled path
(``simpool_graph.py``) and the reference formulas all use the functions here.

The gradient through ``- min Y``, summed over its group, goes to the minimum's position (:func:`add_min_grad`):
one subgradient where elements tie, with no full-size mask, and by a scatter rather than by indexing with the
minimum's position, so nothing waits for the host and ``torch.compile`` keeps one graph. Autograd's own
derivative of ``amin`` (:func:`value_min`) shares it among tied elements; the reference formulas and the
Algorithm 1 framework (``framework.py``) use that one.
"""

from __future__ import annotations

import torch

MIN_OVER = ("sample", "batch", "channel")
SHIFT_EPS = 1e-6  # added after the shift, as both the official code and timm do: keeps x^gamma differentiable


def group_dims(min_over: str, channel_dim: int = 2) -> tuple[int, int]:
    """The first and last dimension of one ``min_over`` group in ``(B, N, C)`` (``channel_dim=2``) or
    ``(B, C, N)`` (``channel_dim=1``) features.

    Raises:
        ValueError: ``min_over`` is none of :data:`MIN_OVER`.
    """
    if min_over not in MIN_OVER:
        raise ValueError(f"min_over must be one of {MIN_OVER}, got {min_over!r}")
    location_dim = 3 - channel_dim
    return {"sample": (1, 2), "batch": (0, 2), "channel": (location_dim, location_dim)}[min_over]


def _kept_shape(values: torch.Tensor, first: int, last: int) -> list[int]:
    """``values``'s shape with the group's dimensions reduced to 1: the minimum broadcasts against ``values``."""
    shape = list(values.shape)
    shape[first : last + 1] = [1] * (last + 1 - first)
    return shape


def value_min(values: torch.Tensor, min_over: str, *, channel_dim: int = 2) -> torch.Tensor:
    """``min Y`` by ``amin``, broadcastable to ``values``: ``(B, 1, 1)``, ``(1, 1, 1)``, ``(B, 1, C)`` or ``(B, C, 1)``.

    Autograd's derivative shares the gradient among tied minima.
    """
    first, last = group_dims(min_over, channel_dim)
    return values.amin(dim=tuple(range(first, last + 1)), keepdim=True)


def argmin(values: torch.Tensor, min_over: str, *, channel_dim: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """``(min Y, index)``: the minimum broadcastable to ``values`` and its flat position in its group.

    ``index`` has the shape of the grouped view ``values.flatten(first, last)`` with the group reduced to 1,
    as :func:`add_min_grad` takes it.
    """
    first, last = group_dims(min_over, channel_dim)
    m, index = values.flatten(first, last).min(dim=first, keepdim=True)  # (B, 1), (1,) or (B, 1, C) / (B, C, 1)
    return m.view(_kept_shape(values, first, last)), index


def add_min_grad(
    grad: torch.Tensor, index: torch.Tensor, min_over: str, *, channel_dim: int = 2, in_place: bool = False
) -> torch.Tensor:
    """``grad`` plus the gradient through ``- min Y``: minus its sum over each group, at the group's minimum.

    Args:
        grad: the gradient of ``V`` (the shape of ``values``).
        index: the positions of :func:`argmin`.
        in_place: write into ``grad`` (a temporary of the caller); else ``grad`` is left as it is.
    """
    first, last = group_dims(min_over, channel_dim)
    grouped = grad.flatten(first, last)  # a view of grad's memory when grad is contiguous
    total = grouped.sum(dim=first, keepdim=True)  # per group, the shape of index
    scatter = grouped.scatter_add_ if in_place else grouped.scatter_add
    return scatter(first, index, -total).view_as(grad)


def shift(values: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``V = Y - (min Y - eps) >= eps`` (16), from the minimum of :func:`argmin`."""
    return values - (m - SHIFT_EPS)


class ShiftByMin(torch.autograd.Function):
    """``V = Y - (min Y - eps)`` as an autograd function whose backward is :func:`add_min_grad`.

    Autograd's own ``amin`` backward compares every element with the minimum and divides by the number of
    ties: a full-size mask and two more passes. ``apply(values, min_over, channel_dim)``.
    """

    @staticmethod
    def forward(ctx, values, min_over: str, channel_dim: int):
        m, index = argmin(values, min_over, channel_dim=channel_dim)
        ctx.save_for_backward(index)
        ctx.min_over, ctx.channel_dim = min_over, channel_dim
        return shift(values, m)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        return add_min_grad(grad, index, ctx.min_over, channel_dim=ctx.channel_dim), None, None
