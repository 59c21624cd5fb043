"""Image-independent maps: hand-worked values on tiny grids."""

from __future__ import annotations

import numpy as np
import pytest

from simpool.evaluate.baselines import NOISE, box_prior, centre, image_independent, mean_map, uniform


def test_uniform_is_seeded_and_nearly_flat():
    maps = uniform(3, (4, 5), seed=7)
    assert maps.shape == (3, 4, 5) and maps.dtype == np.float32
    assert np.array_equal(maps, uniform(3, (4, 5), seed=7)) and not np.array_equal(maps, uniform(3, (4, 5), seed=8))
    assert maps.min() >= 1.0 and maps.max() - maps.min() <= NOISE * 1.01  # float32 rounding of 1 + 1e-6 u


def test_centre_is_a_gaussian_on_the_grid():
    (one,) = centre(1, (2, 4), sigma=0.5)  # sigma: 1 cell down, 2 cells across
    # cell centres at -0.5, 0.5 (rows, / 1) and -1.5, -0.5, 0.5, 1.5 (columns, / 2)
    expected = np.exp(-0.5 * (np.array([-0.5, 0.5])[:, None] ** 2 + (np.array([-1.5, -0.5, 0.5, 1.5]) / 2)[None] ** 2))
    np.testing.assert_allclose(one, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="sigma must be positive"):
        centre(1, (2, 2), sigma=0)


def test_box_prior_averages_masks_or_filled_boxes_on_the_grid():
    masks = np.zeros((2, 4, 4))
    masks[0, :2, :2] = 1  # the top-left cell of a 2 x 2 grid, whole
    masks[1, :, :1] = 1  # half of each left cell
    (prior,) = box_prior(1, (2, 2), masks=masks)
    np.testing.assert_allclose(prior, [[(1 + 0.5) / 2, 0], [0.5 / 2, 0]])
    boxes = [np.array([[0, 0, 2, 2]]), np.array([[0, 0, 1, 4]])]  # the same two objects as boxes
    np.testing.assert_allclose(box_prior(1, (2, 2), boxes=boxes, image_hw=(4, 4))[0], prior)
    with pytest.raises(ValueError, match="needs the training masks"):
        box_prior(1, (2, 2))


def test_mean_map_weighs_every_image_alike():
    maps = np.array([[[1.0, 0.0]], [[0.0, 10.0]]])  # (2, 1, 2): the second has ten times the mass
    np.testing.assert_allclose(mean_map(maps), [[[0.5, 0.5]], [[0.5, 0.5]]])


def test_image_independent_gives_the_three_for_every_image():
    masks = np.ones((3, 8, 8))
    maps = image_independent(5, (2, 2), masks, seed=1)
    assert sorted(maps) == ["box_prior", "centre", "uniform"]
    assert all(m.shape == (5, 2, 2) for m in maps.values())
    np.testing.assert_allclose(maps["box_prior"], 1.0)
