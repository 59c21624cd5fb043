"""Labels moved apart as little as possible: hand-worked cases of :func:`simpool.visualize.labels.spread`."""

from __future__ import annotations

import pytest

from simpool.visualize.labels import spread


@pytest.mark.parametrize(
    ("values", "gap", "expected"),
    [
        ([0.0, 5.0], 1.0, [0.0, 5.0]),  # already apart: unmoved
        ([0.0, 0.0], 1.0, [-0.5, 0.5]),  # a collision splits evenly about the mean
        ([0.0, 0.0, 0.0], 1.0, [-1.0, 0.0, 1.0]),
        ([3.0, 0.0, 0.2], 1.0, [3.0, -0.4, 0.6]),  # input order kept; block start = mean 0.1 - 0.5
        ([0.0, 0.0, 1.2], 1.0, [-0.6, 0.4, 1.4]),  # the third label collides with the moved block: all merge
        ([2.0, 2.0], 0.0, [2.0, 2.0]),
        ([], 1.0, []),
    ],
)
def test_spread_by_hand(values, gap, expected):
    assert spread(values, gap) == pytest.approx(expected)


def test_spread_keeps_order_gap_and_least_squares_against_a_brute_force_shift():
    values = [4.0, 1.0, 1.1, 1.3, 7.0, 6.9]
    placed = spread(values, 0.5)
    ranked = sorted(zip(values, placed, strict=True))
    assert all(b[1] - a[1] >= 0.5 - 1e-9 for a, b in zip(ranked, ranked[1:], strict=False))  # order kept, gap kept
    cost = sum((p - v) ** 2 for v, p in zip(values, placed, strict=True))
    for shift in (-0.05, 0.05):  # moving a merged block up or down only costs more
        moved = [p + shift if 0.9 < v < 1.4 else p for v, p in zip(values, placed, strict=True)]
        assert sum((p - v) ** 2 for v, p in zip(values, moved, strict=True)) > cost


def test_spread_stays_in_bounds_where_room_allows():
    assert spread([10.0, 10.0, 10.0], 1.0, hi=10.0) == pytest.approx([8.0, 9.0, 10.0])
    assert spread([0.0, 0.0], 1.0, lo=0.0) == pytest.approx([0.0, 1.0])
    assert spread([0.0, 0.0, 0.0], 1.0, lo=0.0, hi=1.0) == pytest.approx([0.0, 1.0, 2.0])  # no room: top passes hi


def test_a_negative_gap_is_refused():
    with pytest.raises(ValueError, match="gap must be >= 0"):
        spread([0.0], -1.0)
