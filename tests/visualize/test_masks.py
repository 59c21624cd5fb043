"""mass_mask: DINO's rule on hand-made maps with exact expected masks."""

import numpy as np
import pytest
import torch

from simpool.visualize import mass_mask, overlay_mask


def test_boundary_location_is_kept():
    # shares 0.4, 0.3, 0.2, 0.1: 0.4 alone is below 60%, so 0.3 (which crosses 60%) is kept too
    a = np.array([[4.0, 3.0], [2.0, 1.0]])
    np.testing.assert_array_equal(mass_mask(a, 0.6), [[True, True], [False, False]])


def test_exactly_reached_mass_stops():
    # mass 0.4: the top location holds exactly 40%, so nothing more is needed
    a = np.array([[4.0, 3.0], [2.0, 1.0]])
    np.testing.assert_array_equal(mass_mask(a, 0.4), [[True, False], [False, False]])
    # mass 0.75: 0.4 + 0.3 = 0.7 < 0.75, so 0.2 is the boundary and is kept
    np.testing.assert_array_equal(mass_mask(a, 0.75), [[True, True], [True, False]])


def test_peak_and_scale_invariance():
    # one location with 90% of the mass satisfies 60% alone; scaling the map changes nothing
    a = np.full((3, 3), 1.0)
    a[1, 2] = 72.0  # 72 / (72 + 8) = 0.9
    expected = np.zeros((3, 3), dtype=bool)
    expected[1, 2] = True
    np.testing.assert_array_equal(mass_mask(a), expected)
    np.testing.assert_array_equal(mass_mask(1e-6 * a), expected)


def test_ties_are_kept_together_and_zeros_are_never_needed():
    # a constant map: every location ties with the boundary one
    assert mass_mask(np.ones((2, 3))).all()
    # mass 1 on [1, 0]: the zero location adds no mass, so it is not kept
    np.testing.assert_array_equal(mass_mask(np.array([[1.0, 0.0]]), 1.0), [[True, False]])


def test_matches_dino_formula_on_random_maps():
    # DINO's visualize_attention.py, written plainly: sort ascending, normalise, cumsum > 1 - mass
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(5, 7, 9, generator=generator, dtype=torch.float64)  # continuous values: no ties
    for mass in (0.3, 0.6, 0.9):
        flat = a.reshape(5, -1)
        values, order = flat.sort(dim=1)
        cumulative = (values / values.sum(1, keepdim=True)).cumsum(1)
        keep_sorted = cumulative > 1 - mass
        expected = torch.zeros_like(keep_sorted).scatter(1, order, keep_sorted).reshape(a.shape)
        torch.testing.assert_close(mass_mask(a, mass), expected)


def test_kind_and_shape_follow_input():
    a = torch.rand(2, 4, 4)
    mask = mass_mask(a)
    assert torch.is_tensor(mask) and mask.dtype == torch.bool and mask.shape == (2, 4, 4)
    np_mask = mass_mask(a.numpy()[0])
    assert isinstance(np_mask, np.ndarray) and np_mask.shape == (4, 4)
    np.testing.assert_array_equal(np_mask, mask[0].numpy())


@pytest.mark.parametrize(
    "bad", [dict(mass=0.0), dict(mass=1.5), dict(attention=-np.eye(2)), dict(attention=np.zeros((2, 2)))]
)
def test_invalid_input(bad):
    kwargs = dict(attention=np.ones((2, 2)), mass=0.6) | bad
    with pytest.raises(ValueError):
        mass_mask(**kwargs)


def test_overlay_mask_tints_exactly_the_masked_patch():
    # a 2x2 mask with its top-left patch on, on an 8x6 white image: nearest upsampling -> pixels [0:3, 0:4]
    mask = np.array([[True, False], [False, False]])
    out = overlay_mask(np.ones((6, 8, 3)), mask, color=(0.0, 0.0, 1.0), alpha=1.0)
    assert out.shape == (6, 8, 3)
    np.testing.assert_allclose(out[:3, :4], np.broadcast_to([0.0, 0.0, 1.0], (3, 4, 3)))
    np.testing.assert_allclose(out[3:, :], 0.35)
    np.testing.assert_allclose(out[:3, 4:], 0.35)
