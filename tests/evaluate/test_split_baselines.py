"""The image-independent baselines on a wsolevaluation split, on hand-made objects whose scores are known."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from simpool.data.wsol import WSOLMetadata
from simpool.evaluate import split_baselines as module
from simpool.evaluate.baselines import mean_map
from simpool.evaluate.split_baselines import object_prior, split_baselines, split_mean_map

SIDE = 224
CENTRED = np.zeros((SIDE, SIDE))
CENTRED[56:168, 56:168] = 1  # a centred 112-pixel square
CORNER = np.zeros((SIDE, SIDE))
CORNER[:40, :40] = 1  # a 40-pixel square in the top-left corner, disjoint from it


def two_objects() -> tuple[WSOLMetadata, np.ndarray]:
    """Image ``a``: the centred square; image ``b``: the corner square; their boxes and masks ``(2, 224, 224)``."""
    boxes = {"a": np.array([[56, 56, 168, 168]]), "b": np.array([[0, 0, 40, 40]])}
    metadata = WSOLMetadata(["a", "b"], {"a": 0, "b": 0}, {"a": (SIDE, SIDE), "b": (SIDE, SIDE)}, boxes)
    return metadata, np.stack([CENTRED, CORNER]).astype(np.uint8)


def pxap_of_the_centred_square() -> float:
    """PxAP of the centred square's map (1 on it, 0 elsewhere) for both images, by hand: at threshold 1 it predicts
    the square in both images, right in ``a`` (12,544 pixels), wrong in ``b``: precision 1/2 at recall
    12544 / (12544 + 1600); at threshold 0 every pixel: precision 14144 / (2 x 224^2) at recall 1."""
    recall = 12544 / (12544 + 1600)
    return 100 * (0.5 * recall + 14144 / (2 * SIDE * SIDE) * (1 - recall))


def test_each_baseline_is_one_map_scored_like_a_model():
    metadata, masks = two_objects()
    scores = split_baselines(metadata, CENTRED, (SIDE, SIDE), masks, {"model": [CENTRED, 3 * CENTRED]})
    assert list(scores) == ["uniform", "centre", "box_prior", "mean_map/model"]
    # the box prior (the centred square) and the model's mean map (the square again) box the square at every
    # threshold: IoU 1 on a, 0 on b
    for name in ("box_prior", "mean_map/model"):
        assert {k: scores[name][k] for k in ("MaxBoxAccV2", "BoxAcc@30", "BoxAcc@50", "BoxAcc@70")} == {
            "MaxBoxAccV2": 50.0,
            "BoxAcc@30": 50.0,
            "BoxAcc@50": 50.0,
            "BoxAcc@70": 50.0,
        }
        assert scores[name]["PxAP"] == pytest.approx(pxap_of_the_centred_square(), rel=1e-12)
    # the centred Gaussian's level sets are centred squares-ish of every size: one fits a's box, none b's
    assert scores["centre"]["MaxBoxAccV2"] == 50.0 and scores["centre"]["BoxAcc@70"] == 50.0
    # near-uniform noise ranks the pixels at random: about the share of mask pixels, 14144 / (2 x 224^2) = 14.09%
    assert set(scores["uniform"]) == set(scores["centre"]) and abs(scores["uniform"]["PxAP"] - 14.09) < 0.5


def test_boxes_alone_give_the_box_metrics_alone():
    metadata, _ = two_objects()
    scores = split_baselines(metadata, CENTRED, (SIDE, SIDE))
    assert scores["box_prior"]["MaxBoxAccV2"] == 50.0 and "PxAP" not in scores["box_prior"]


def test_object_prior_from_masks_or_from_boxes(tmp_path):
    metadata, _ = two_objects()
    # boxes, rescaled to 224 as the metric rescales them: b's image is 448x224, its box (0, 0, 80, 40) -> 40x40
    metadata.image_sizes["b"], metadata.boxes["b"] = (448, 224), np.array([[0, 0, 80, 40]])
    np.testing.assert_allclose(object_prior(metadata), (CENTRED + CORNER) / 2, rtol=1e-7)
    # masks (PNG, 0/255) read at their own 224 size; an image's instances joined
    for name, array in [("a.png", CENTRED), ("b1.png", CORNER[:, ::-1]), ("b2.png", CORNER)]:
        cv2.imwrite(str(tmp_path / name), (255 * array).astype(np.uint8))
    metadata.masks = {"a": ["a.png"], "b": ["b1.png", "b2.png"]}
    expected = (CENTRED + np.maximum(CORNER, CORNER[:, ::-1])) / 2
    np.testing.assert_array_equal(object_prior(metadata, tmp_path), expected)
    np.testing.assert_array_equal(object_prior(metadata, tmp_path, (112, 112)), expected[::2, ::2])  # nearest
    with pytest.raises(ValueError, match="the prior's split has no box"):
        object_prior(WSOLMetadata(["a"]))


def test_the_mean_map_in_chunks_is_the_mean_map(monkeypatch):
    maps = np.random.default_rng(0).random((7, 5, 6))
    monkeypatch.setattr(module, "CHUNK", 3)  # 3 + 3 + 1 maps
    np.testing.assert_allclose(split_mean_map(maps), mean_map(maps)[0], rtol=1e-6)
