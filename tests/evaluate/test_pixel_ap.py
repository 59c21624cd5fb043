"""PxAP (wsolevaluation's ``MaskEvaluator``): hand-worked cases and a direct pixel count on random maps.

``benchmarks/reference_pxap.py`` runs wsolevaluation's own class beside ours (kept output:
``docs/results/pxap_parity.json``, identical on every case).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simpool.evaluate.localization import pxap
from simpool.evaluate.scoremaps import cam_thresholds, normalize_scoremap, resize_scoremap

MASK = np.array([[1, 0], [0, 0]])


def test_a_map_that_ranks_the_object_first_scores_100():
    # bins at interval 0.5: [0, .5) [.5, 1) [1, 2) [2, 3]; the object pixel (score 1) is the only one at tau = 1:
    # precision 1 at recall 1
    assert pxap([np.array([[1.0, 0.5], [0.25, 0.0]])], [MASK], cam_curve_interval=0.5) == pytest.approx(100.0)


def test_a_background_pixel_ranked_first_halves_the_precision():
    # tau = 1 keeps the background pixel only (precision 0, recall 0); tau = 0.5 adds the object pixel:
    # precision 1/2 at recall 1; tau = 0 adds the last two at recall 1 (no recall step). AP = 0.5 x 1
    assert pxap([np.array([[0.5, 1.0], [0.25, 0.0]])], [MASK], cam_curve_interval=0.5) == pytest.approx(50.0)


def test_maps_are_min_max_normalised_and_resized_to_their_mask():
    scaled = np.array([[30.0, 20.0], [15.0, 10.0]])  # the first case's map, times 20, plus 10
    assert pxap([scaled], [MASK], cam_curve_interval=0.5) == pytest.approx(100.0)
    big_mask = np.kron(MASK, np.ones((8, 8), dtype=int))  # (16, 16): the map is resized to it
    small = torch.tensor([[1.0, 0.5], [0.25, 0.0]])  # torch maps are read too
    direct = direct_pxap([normalize_scoremap(resize_scoremap(small.numpy(), (16, 16)))], [big_mask], 0.5)
    assert pxap(small[None], big_mask[None], cam_curve_interval=0.5) == pytest.approx(direct, abs=1e-12)


def direct_pxap(maps, masks, interval: float) -> float:
    """PxAP counted pixel by pixel at each threshold (no histograms): the thresholds 0, w, ..., 1 - w, then 1 and 2,
    from the highest down; precision at each, times the recall gained."""
    scores = np.concatenate([m.ravel() for m in maps])
    truth = np.concatenate([np.asarray(k).ravel() for k in masks]) == 1
    total, area = 0.0, truth.sum()
    previous_recall = None
    for tau in np.append(cam_thresholds(interval), [1.0, 2.0])[::-1]:
        predicted = scores >= tau
        tp, count = (predicted & truth).sum(), predicted.sum()
        recall = tp / area
        if previous_recall is not None and count:
            total += tp / count * (recall - previous_recall)
        previous_recall = recall
    return 100.0 * total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pxap_equals_a_direct_pixel_count_on_random_maps_and_masks(seed):
    rng = np.random.default_rng(seed)
    maps = rng.random((6, 7, 7)) ** 3  # (N, h, w): resized to the 28 x 28 masks
    masks = (rng.random((6, 28, 28)) < 0.3).astype(np.uint8)
    prepared = [normalize_scoremap(resize_scoremap(m, (28, 28))) for m in maps]
    assert pxap(maps, masks, cam_curve_interval=0.01) == pytest.approx(direct_pxap(prepared, masks, 0.01), abs=1e-9)


def test_a_map_that_ignores_the_image_scores_the_share_of_mask_pixels():
    # every pixel tied: the only threshold that predicts anything predicts all, precision = mask share, recall 1
    rng = np.random.default_rng(0)
    masks = (rng.random((5, 10, 10)) < 0.25).astype(np.uint8)
    flat = np.zeros((5, 10, 10))  # constant maps normalise to zeros
    assert pxap(flat, masks) == pytest.approx(100.0 * masks.mean())


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="2 score maps for 1 masks"):
        pxap(np.zeros((2, 2, 2)), MASK[None])
    with pytest.raises(ValueError, match="mask 0 must be a 2-D array of 0 and 1"):
        pxap(np.zeros((1, 2, 2)), np.full((1, 2, 2), 3))
    with pytest.raises(ValueError, match="no mask has a foreground pixel"):
        pxap(np.ones((1, 2, 2)), np.zeros((1, 2, 2), dtype=int))
