"""Keyword arguments that fit the probing heads to the tiny widths of the pooling tests (``DIM = 16``).

Their defaults follow their papers (32 queries for ``ep``, 12 heads for ``aim`` and ``jepa``, heads of 64
channels for ``clip``), which do not divide 16 channels. Every other pool is built with its defaults.
"""

from __future__ import annotations

TINY_KWARGS: dict[str, dict] = {
    "ep": {"num_queries": 4},
    "aim": {"num_heads": 4},
    "jepa": {"num_heads": 4},
    "clip": {"num_heads": 4},
}


def tiny_kwargs(name: str) -> dict:
    """The keyword arguments for pool ``name`` at ``DIM = 16`` (empty for pools whose defaults fit)."""
    return dict(TINY_KWARGS.get(name, {}))
