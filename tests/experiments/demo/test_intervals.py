"""The Student-t 95% interval of a mean over runs and the wording it allows, by hand."""

from __future__ import annotations

import pytest

from simpool.experiments.demo.intervals import t_interval, wording

T975_1 = 12.706204736174704  # Student t quantile 0.975 for 1 degree of freedom


def test_intervals_and_wording_of_few_runs():
    assert t_interval([3.0]) == (3.0, None) and wording(None) == "one run: no interval"
    mean, ci = t_interval([1.0, 3.0])  # sd sqrt(2): 2 +- 12.706 * sqrt(2) / sqrt(2)
    assert mean == 2.0 and ci == pytest.approx([2 - T975_1, 2 + T975_1])
    assert wording([0.0, 1.0]) == "no consistent difference" and wording([0.1, 1.0]) == "SimPool higher"
    assert wording([-1.0, -0.1]) == "CLS higher"
