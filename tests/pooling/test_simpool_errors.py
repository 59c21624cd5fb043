"""SimPool refuses what it cannot pool: a gamma that is not a positive finite number, features with no locations.

Before: ``gamma=float("inf")`` returned all ones (``V^inf = inf``, then ``inf^(1/inf) = inf^0 = 1``) without a word,
``gamma="abc"`` was a ``TypeError`` comparing str and int, and N = 0 locations an ``IndexError`` deep in the minimum.
"""

from __future__ import annotations

import math

import pytest
import torch

from simpool import SimPool, create_pool

GAMMA_MESSAGE = "gamma must be a positive finite number or None"


@pytest.mark.parametrize("gamma", [math.inf, -math.inf, math.nan, 0, -1.0, "abc", "2", [2.0], True])
@pytest.mark.parametrize(
    "build", [SimPool, lambda dim, **kw: create_pool("simpool", dim, **kw)], ids=["class", "registry"]
)
def test_a_gamma_that_is_not_a_positive_finite_number_is_one_clear_error(build, gamma):
    with pytest.raises(ValueError, match=f"{GAMMA_MESSAGE}, got {gamma!r}".replace("[", r"\[").replace("]", r"\]")):
        build(8, gamma=gamma)


@pytest.mark.parametrize("gamma", [None, 0.5, 1, 1.25, 2, 5.0])
def test_positive_finite_gammas_and_none_are_accepted(gamma):
    pool = SimPool(8, gamma=gamma)
    assert pool.gamma == (None if gamma is None else float(gamma))
    assert torch.isfinite(pool(torch.randn(2, 5, 8))).all()


def test_gamma_inf_is_not_silently_all_ones():
    # the failure mode the check prevents: without it the output is exactly 1 everywhere, whatever the input
    with pytest.raises(ValueError, match=GAMMA_MESSAGE):
        SimPool(8, gamma=float("inf"))


@pytest.mark.parametrize("shape", [(2, 0, 8), (2, 8, 0, 4), (2, 8, 3, 0)], ids=["tokens", "height 0", "width 0"])
def test_features_with_no_locations_are_one_clear_error(shape):
    pool = SimPool(8, gamma=2.0)
    with pytest.raises(ValueError, match=rf"no locations.*{tuple(shape)}".replace("(", r"\(").replace(")", r"\)")):
        pool(torch.zeros(shape))
