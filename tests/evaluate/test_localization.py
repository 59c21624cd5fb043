"""MaxBoxAccV2 (wsolevaluation): hand-made maps with exact BoxAcc, the reference's quirks, loop parity."""

import cv2
import numpy as np
import pytest
import torch

from simpool.evaluate.localization import (
    box_iou_inclusive,
    cam_thresholds,
    iou_curve,
    iou_curve_loop,
    max_box_acc_v2,
    normalize_scoremap,
    resize_boxes,
    scoremap_boxes,
)

FULL = (224, 224)  # image size equal to the map: ground-truth boxes are not rescaled


def ring_map():
    """A filled square [50, 149]^2 with a square hole [80, 119]^2: an outer and an inner contour."""
    m = np.zeros((224, 224))
    m[50:150, 50:150] = 1.0
    m[80:120, 80:120] = 0.0
    return m


def test_ring_gives_outer_and_hole_boxes():
    # boundingRect of the outer contour: x=50, w=100 -> (50, 50, 150, 150); the hole's contour runs on the
    # foreground pixels around it, rows/cols 79..120 -> (79, 79, 79 + 42, 79 + 42) = (79, 79, 121, 121).
    boxes = scoremap_boxes(ring_map(), [0.5])[0]
    assert sorted(boxes.tolist()) == [[50, 50, 150, 150], [79, 79, 121, 121]]


def test_inner_contour_matters_v2_vs_v1():
    gt = [np.array([[79, 79, 121, 121]])]  # exactly the hole's box
    v2 = max_box_acc_v2(ring_map()[None], gt, [FULL], multi_contour=True)
    assert v2["MaxBoxAccV2"] == 100.0
    # v1 keeps the largest contour, the outer one: IoU = 43^2 / 101^2 = 0.18 < 0.3 at every threshold
    v1 = max_box_acc_v2(ring_map()[None], gt, [FULL], multi_contour=False)
    assert v1 == {**v1, "MaxBoxAccV2": 0.0, "BoxAcc@30": 0.0, "BoxAcc@50": 0.0, "BoxAcc@70": 0.0}


@pytest.mark.parametrize("value", [0.0, 0.7, np.nan])
def test_constant_zero_and_nan_maps_give_the_empty_box(value):
    # normalisation turns them into zeros: no foreground, the box [0, 0, 0, 0] (one pixel with the +1 rule).
    # Against GT (0, 0, 0, 1) (two pixels) its IoU is 1/2: correct at 30 and 50, not at 70.
    score_map = np.full((1, 224, 224), value)
    result = max_box_acc_v2(score_map, [np.array([[0, 0, 0, 1]])], [FULL])
    assert (result["BoxAcc@30"], result["BoxAcc@50"], result["BoxAcc@70"]) == (100.0, 100.0, 0.0)
    assert result["MaxBoxAccV2"] == pytest.approx(200 / 3)


def nested_map():
    """Value 0.5 on [20, 179]^2 holding 1.0 on [60, 99]^2: uint8 127 and 255."""
    m = np.zeros((224, 224))
    m[20:180, 20:180] = 0.5
    m[60:100, 60:100] = 1.0
    return m


def test_threshold_is_optimised_over_the_set_not_per_image():
    # Foreground is uint8 > int(tau * 255): tau <= 0.49 keeps the big square (127 > 124), tau >= 0.50
    # only the small one (int(127.5) = 127, strict). Image 1 wants the small box, image 2 the big one:
    # each is right at 50 of the 100 thresholds, never both, so every BoxAcc is 50 (a per-image optimum: 100).
    maps = np.stack([nested_map(), nested_map()])
    gts = [np.array([[60, 60, 99, 99]]), np.array([[20, 20, 179, 179]])]
    result = max_box_acc_v2(maps, gts, [FULL, FULL])
    assert result["MaxBoxAccV2"] == 50.0
    assert result["threshold@50"] == 0.0  # the first threshold reaching the maximum
    only_small = max_box_acc_v2(maps[:1], gts[:1], [FULL])
    assert only_small["MaxBoxAccV2"] == 100.0
    assert only_small["threshold@30"] == pytest.approx(0.5)


def test_best_box_against_any_ground_truth_box():
    gts = [np.array([[0, 0, 5, 5], [60, 60, 99, 99]])]  # the second instance matches the small square
    assert max_box_acc_v2(nested_map()[None], gts, [FULL])["MaxBoxAccV2"] == 100.0


def test_box_clipped_at_the_border():
    m = np.zeros((224, 224))
    m[:, 200:] = 1.0
    # boundingRect (200, 0, 24, 224): x1 = min(224, 223), y1 = min(224, 223)
    assert scoremap_boxes(m, [0.0])[0].tolist() == [[200, 0, 223, 223]]


def test_resize_boxes_truncates():
    # 121 * 224/448 = 60.5 -> 60; 361 * 0.5 = 180.5 -> 180; 75 * 224/300 = 56.0; 299 * 224/300 = 223.25 -> 223
    assert resize_boxes([[121, 75, 361, 299]], (448, 300)).tolist() == [[60, 56, 180, 223]]


def test_gt_boxes_rescaled_with_image_size():
    # the small square at 224 is (60, 60, 99, 99); at (448, 448) the same object is (120, 120, 199, 199)
    result = max_box_acc_v2(nested_map()[None], [np.array([[120, 120, 199, 199]])], [(448, 448)])
    assert result["BoxAcc@70"] == 100.0


def test_iou_plus_one_convention():
    # 10x10 boxes overlapping in 5x5 pixels: 25 / (100 + 100 - 25) = 1/7
    assert box_iou_inclusive(np.array([[0, 0, 9, 9]]), np.array([[5, 5, 14, 14]]))[0, 0] == pytest.approx(1 / 7)
    assert box_iou_inclusive(np.array([[0, 0, 0, 0]]), np.array([[0, 0, 0, 0]]))[0, 0] == 1.0


def test_thresholds_and_normalisation():
    assert len(cam_thresholds(0.01)) == 100 and len(cam_thresholds(0.001)) == 1000
    m = normalize_scoremap(np.array([[2.0, 4.0], [3.0, 6.0]]))
    np.testing.assert_array_equal(m, [[0.0, 0.5], [0.25, 1.0]])  # (c - 2) / 4


def random_maps(seed):
    rng = np.random.default_rng(seed)
    smooth = cv2.resize(rng.random((14, 14)), (224, 224), interpolation=cv2.INTER_CUBIC)
    blocky = cv2.resize(rng.random((28, 28)), (224, 224), interpolation=cv2.INTER_NEAREST)  # many holes
    fine = cv2.resize(rng.random((56, 56)), (224, 224), interpolation=cv2.INTER_LINEAR)
    return [normalize_scoremap(m) for m in (smooth, blocky, fine)]


@pytest.mark.parametrize("multi_contour", [True, False])
def test_vectorised_equals_the_per_threshold_loop(multi_contour):
    rng = np.random.default_rng(0)
    thresholds = cam_thresholds(0.01)
    for scoremap in random_maps(1):
        corners = np.sort(rng.integers(0, 224, size=(3, 2, 2)), axis=1)  # (G, {min, max}, {x, y})
        gt = corners.transpose(0, 2, 1).reshape(3, 4)[:, [0, 2, 1, 3]]  # (x0, y0, x1, y1)
        np.testing.assert_array_equal(
            iou_curve(scoremap, gt, thresholds, multi_contour), iou_curve_loop(scoremap, gt, thresholds, multi_contour)
        )


def test_torch_maps_at_feature_resolution():
    # a 14x14 attention map is upsampled bicubically to 224 and normalised as the reference's CAMs
    attention = torch.zeros(1, 14, 14)
    attention[0, 4:8, 4:8] = 1.0
    result = max_box_acc_v2(attention, [np.array([[64, 64, 127, 127]])], [FULL])
    assert result["BoxAcc@50"] == 100.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="score_maps"):
        max_box_acc_v2(np.zeros((224, 224)), [np.zeros((1, 4))], [FULL])
    with pytest.raises(ValueError, match="outside"):
        max_box_acc_v2(np.full((1, 224, 224), 2.0), [np.zeros((1, 4))], [FULL], normalize=False)
    with pytest.raises(ValueError, match="box lists"):
        max_box_acc_v2(np.zeros((2, 224, 224)), [np.zeros((1, 4))], [FULL])


@pytest.mark.parametrize("multi_contour", [True, False])
def test_a_repeated_map_is_traced_once_and_scored_per_image(monkeypatch, multi_contour):
    # a baseline map (the same for every image) against different boxes: the counts are the per-image loop's,
    # and each distinct map's boxes are computed once (within a chunk of maps traced together)
    from simpool.evaluate import localization

    rng = np.random.default_rng(3)
    same = cv2.GaussianBlur(rng.random((224, 224)), (0, 0), 9)
    same = (same - same.min()) / (same.max() - same.min())
    other = np.roll(same, 50, axis=1)
    maps = [same, same, same, other, same]
    gts = [np.array([[x, 30, x + 90, 150]]) for x in (10, 60, 120, 40, 80)]
    thresholds = cam_thresholds(0.01)
    calls = []
    traced = localization.candidate_boxes
    monkeypatch.setattr(localization, "candidate_boxes", lambda *a: calls.append(1) or traced(*a))
    counts = localization.box_accuracy_counts(maps, gts, thresholds, multi_contour=multi_contour)
    levels = np.array([30, 50, 70])[:, None] / 100
    expected = sum(
        (iou_curve_loop(m, g, thresholds, multi_contour)[None] >= levels).astype(int)
        for m, g in zip(maps, gts, strict=True)
    )
    np.testing.assert_array_equal(counts, expected)
    assert counts.sum() > 0 and len(calls) == 2  # same (x4) and other: each traced once
