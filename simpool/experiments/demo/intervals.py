"""The 95% interval of a mean difference over runs, and what it allows one to say (``simpool demo --pair``)."""

from __future__ import annotations

import math

import numpy as np
import scipy.stats


def t_interval(values) -> tuple[float, list[float] | None]:
    """The mean of ``values`` and its Student-t 95% confidence interval ``[low, high]`` (None for one value)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, None
    half = float(scipy.stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, [mean - half, mean + half]


def wording(ci: list[float] | None) -> str:
    """What an interval of SimPool - CLS says: "no consistent difference" when it covers 0."""
    if ci is None:
        return "one run: no interval"
    if ci[0] <= 0 <= ci[1]:
        return "no consistent difference"
    return "SimPool higher" if ci[0] > 0 else "CLS higher"
