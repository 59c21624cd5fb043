"""overlay: a map peaked at a known patch lights up that patch's pixels, at any input size."""

import matplotlib
import numpy as np
import pytest
import torch

from simpool.visualize import overlay, to_rgb


@pytest.mark.parametrize(
    "grid, image_hw, patch",
    [
        ((4, 4), (64, 64), (1, 2)),
        ((56, 56), (896, 896), (30, 11)),
        ((5, 7), (50, 70), (4, 0)),
        ((3, 3), (31, 47), (2, 2)),
    ],
)
def test_peak_lights_up_its_patch(grid, image_hw, patch):
    h, w = grid
    H, W = image_hw
    attention = np.zeros(grid)
    attention[patch] = 1.0
    out = overlay(np.zeros((H, W, 3)), attention, alpha=1.0)  # on black, alpha 1: the colormap alone
    colormap = matplotlib.colormaps["inferno"]
    hottest = np.asarray(colormap(1.0)[:3])
    lit = np.all(np.isclose(out, hottest), axis=-1)  # (H, W): pixels at the map's maximum
    ys, xs = np.nonzero(lit)
    assert len(ys) > 0
    # every hottest pixel lies inside the patch's own block of pixels
    r, c = patch
    assert ys.min() >= np.floor(r * H / h) and ys.max() < np.ceil((r + 1) * H / h)
    assert xs.min() >= np.floor(c * W / w) and xs.max() < np.ceil((c + 1) * W / w)
    # pixels more than one patch away see none of the peak: the colormap's coldest color
    far = np.ones((H, W), dtype=bool)
    far[
        max(0, int((r - 1) * H / h)) : int(np.ceil((r + 2) * H / h)),
        max(0, int((c - 1) * W / w)) : int(np.ceil((c + 2) * W / w)),
    ] = False
    np.testing.assert_allclose(out[far], np.broadcast_to(colormap(0.0)[:3], out[far].shape))


def test_alpha_blend_formula_and_layouts():
    image = np.random.default_rng(0).random((12, 10, 3))
    attention = np.arange(6.0).reshape(2, 3)
    colored = overlay(np.zeros_like(image), attention, alpha=1.0)
    np.testing.assert_allclose(overlay(image, attention, alpha=0.3), 0.7 * image + 0.3 * colored)
    # channel-first and uint8 inputs are the same picture
    np.testing.assert_allclose(overlay(image.transpose(2, 0, 1), attention, alpha=0.3), 0.7 * image + 0.3 * colored)
    as_uint8 = (image * 255).round().astype(np.uint8)
    np.testing.assert_allclose(to_rgb(as_uint8), as_uint8 / 255.0)
    assert to_rgb(np.zeros((5, 4))).shape == (5, 4, 3)
    with pytest.raises(ValueError):
        to_rgb(np.zeros((2, 3, 4, 5)))


def test_a_map_straight_from_a_model_needs_no_detaching():
    # attention returned by a forward pass with grad enabled (and on any device) overlays as its array does
    attention = torch.rand(4, 4, requires_grad=True)
    image = np.zeros((16, 16, 3))
    np.testing.assert_allclose(overlay(image, attention), overlay(image, attention.detach().numpy()))


@pytest.mark.parametrize("value", [1 / 16, 0.0, 3.0])
def test_a_uniform_map_is_drawn_uniform_not_as_a_darkened_image(value):
    # before: min-max made it all zeros, inferno's black at alpha 0.5: the image at half brightness
    image = np.random.default_rng(0).random((16, 16, 3))
    out = overlay(image, np.full((4, 4), value) + np.array([0.0, 1e-9, 0.0, 0.0]) * value, alpha=0.5)
    middle = np.array(matplotlib.colormaps["inferno"](0.5)[:3])  # the colormap's middle colour
    np.testing.assert_allclose(out, 0.5 * image + 0.5 * middle)
