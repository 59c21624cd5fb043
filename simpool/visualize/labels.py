"""Labels that do not overlap: move each label along one axis as little as possible so that neighbours are at
least ``gap`` apart (the board's head names, which cluster where heads score alike)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def spread(values: Sequence[float], gap: float, lo: float = -math.inf, hi: float = math.inf) -> list[float]:
    """Positions for labels wanted at ``values``, in the same order, keeping their order along the axis, at least
    ``gap`` apart, and of least total squared displacement.

    Pool-adjacent-violators on the sorted values: a run of labels that would collide is one block at spacing
    ``gap`` whose start is ``mean(run) - gap * (len(run) - 1) / 2``, the start that minimises the block's squared
    displacement; a block that then collides with the one below it merges with it. ``[0, 0]`` with gap 1 gives
    ``[-0.5, 0.5]``; values already ``gap`` apart are returned as they are.

    Then into ``[lo, hi]`` where room allows: labels above ``hi`` come down to it, each pushing the ones below
    to stay ``gap`` apart, and then labels below ``lo`` go up the same way (so with too little room the top ones
    pass ``hi``)."""
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    order = sorted(range(len(values)), key=lambda index: values[index])
    blocks: list[tuple[float, list[float]]] = []  # (start, the sorted values of the block's labels)
    for index in order:
        blocks.append((float(values[index]), [float(values[index])]))
        while len(blocks) > 1 and blocks[-2][0] + gap * len(blocks[-2][1]) > blocks[-1][0]:
            members = blocks[-2][1] + blocks.pop()[1]
            blocks[-1] = (sum(members) / len(members) - gap * (len(members) - 1) / 2, members)
    placed = [start + gap * offset for start, members in blocks for offset in range(len(members))]
    for rank in reversed(range(len(placed))):
        placed[rank] = min(placed[rank], hi if rank == len(placed) - 1 else placed[rank + 1] - gap)
    for rank in range(len(placed)):
        placed[rank] = max(placed[rank], lo if rank == 0 else placed[rank - 1] + gap)
    result = [0.0] * len(values)
    for rank, index in enumerate(order):
        result[index] = placed[rank]
    return result


__all__ = ["spread"]
