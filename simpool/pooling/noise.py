"""Seeded noise without a ``torch.Generator``: the same numbers on every device, eager or compiled.

Eval-mode pools that start from random vectors (k-means, Slot Attention, the framework's k-means
initialisation) must be deterministic. A ``torch.Generator`` made at every call would do it eagerly,
but it is an opaque object that ``torch.compile`` cannot put in a graph, and it lives on one device.
Here the noise is a pure function of ``(seed, position)``: a 32-bit integer hash (Bob Jenkins'
six-step mix, additions, xors and shifts only) of each element's flat index, computed with int64
tensor operations that never overflow, so it is one graph, on the input's device, bit-identical
on CPU and GPU.
"""

from __future__ import annotations

import math

import torch

_MASK = 0xFFFFFFFF  # 32 bits, kept in int64 so that no step overflows


def _mix32(a):
    """Bob Jenkins' 32-bit integer hash, for an int64 tensor (or a Python int) holding values in [0, 2^32)."""
    a = ((a + 0x7ED55D16) + (a << 12)) & _MASK
    a = ((a ^ 0xC761C23C) ^ (a >> 19)) & _MASK
    a = ((a + 0x165667B1) + (a << 5)) & _MASK
    a = ((a + 0xD3A2646C) ^ (a << 9)) & _MASK
    a = ((a + 0xFD7046C5) + (a << 3)) & _MASK
    return ((a ^ 0xB55A4F09) ^ (a >> 16)) & _MASK


def _bits(numel: int, seed: int, stream: int, device: torch.device) -> torch.Tensor:
    """``numel`` hashed 32-bit words for ``seed``: ``(numel,)`` int64 in [0, 2^32)."""
    key = _mix32((_mix32(seed & _MASK) + stream) & _MASK)  # a Python int: no tensor for the seed
    index = torch.arange(numel, dtype=torch.int64, device=device)  # (numel,)
    return _mix32(_mix32(index ^ key) ^ key)


def seeded_uniform(shape: tuple[int, ...], seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Uniform noise in ``[0, 1)`` of ``shape`` (float32), a function of ``seed`` and the position only."""
    numel = math.prod(shape)
    return ((_bits(numel, seed, 0, device) >> 8).to(torch.float32) * 2.0**-24).view(shape)  # 24-bit mantissa


def seeded_normal(shape: tuple[int, ...], seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard normal noise of ``shape`` (float32) by Box-Muller from two seeded uniforms."""
    numel = math.prod(shape)
    u1 = ((_bits(numel, seed, 1, device) >> 8).to(torch.float32) + 1.0) * 2.0**-24  # (0, 1]: log finite
    u2 = (_bits(numel, seed, 2, device) >> 8).to(torch.float32) * 2.0**-24  # [0, 1)
    return (torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)).view(shape)
