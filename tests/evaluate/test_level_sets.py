"""The compiled level-set kernel behind MaxBoxAccV2: OpenCV's contour boxes for every threshold at once."""

import os

import cv2
import numpy as np
import pytest

from simpool.evaluate import localization
from simpool.evaluate.localization import cam_thresholds, iou_curve, iou_curve_loop, normalize_scoremap

level_sets = localization._level_sets
needs_kernel = pytest.mark.skipif(level_sets is None, reason="simpool.evaluate._level_sets was not built")


def test_kernel_is_built_where_required():
    # CI sets SIMPOOL_REQUIRE_COMPILED=1 so that a failed build cannot hide behind the OpenCV fallback
    if os.environ.get("SIMPOOL_REQUIRE_COMPILED") != "1":
        pytest.skip("SIMPOOL_REQUIRE_COMPILED is not set")
    assert level_sets is not None, "the C kernel simpool.evaluate._level_sets did not build"


def opencv_boxes(image: np.ndarray, level: int) -> list[tuple[int, int, int, int]]:
    """Contour boxes of ``image > level`` as wsolevaluation takes them (RETR_TREE, boundingRect, clipped)."""
    height, width = image.shape
    contours = cv2.findContours((image > level).astype(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append((x, y, min(x + w, width - 1), min(y + h, height - 1)))
    return sorted(boxes)


def kernel_boxes(image: np.ndarray, levels: np.ndarray) -> dict[int, list[tuple[int, int, int, int]]]:
    boxes, level_index = localization._level_set_boxes(image, np.asarray(levels))
    out = {int(level): [] for level in levels}
    for box, index in zip(boxes.tolist(), level_index.tolist(), strict=True):
        out[int(levels[index])].append(tuple(box))
    return {level: sorted(b) for level, b in out.items()}


def random_images(rng: np.random.Generator, count: int):
    """Small uint8 maps of every kind: noise (many holes), blocky, smooth, thin and degenerate shapes."""
    for i in range(count):
        height, width = (int(v) for v in rng.integers(1, 40, size=2))
        kind = i % 4
        if kind == 0:
            image = rng.integers(0, 256, size=(height, width))
        elif kind == 1:
            image = rng.integers(0, 4, size=(height, width)) * 60
        else:
            grid = rng.random((max(2, height // 4), max(2, width // 4)))
            image = 255 * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)
        yield np.ascontiguousarray(image, dtype=np.uint8)


@needs_kernel
def test_hand_made_ring_with_a_dot():
    # 10x10: a block of 9 over [1, 7]^2 with a hole of 0 over [3, 5]^2 holding a dot of 5 at (4, 4),
    # and a pixel of 3 in the corner (9, 9). Boxes are (x, y, min(x + w, 9), min(y + h, 9)).
    image = np.zeros((10, 10), np.uint8)
    image[1:8, 1:8] = 9
    image[3:6, 3:6] = 0
    image[4, 4] = 5
    image[9, 9] = 3
    got = kernel_boxes(image, np.array([-1, 0, 2, 4, 8]))
    assert got[-1] == [(0, 0, 9, 9)]  # everything is foreground
    block, hole, dot, corner = (1, 1, 8, 8), (2, 2, 7, 7), (4, 4, 5, 5), (9, 9, 9, 9)  # hole: traced around it
    assert got[0] == sorted([block, hole, dot, corner])
    assert got[2] == got[0]  # no value lies in (0, 2]
    assert got[4] == sorted([block, hole, dot])  # the corner (3) is background now
    assert got[8] == sorted([block, hole])  # so is the dot: the hole is the full 3x3 square, same box
    assert got == {level: opencv_boxes(image, level) for level in got}


@needs_kernel
def test_every_level_equals_opencv_on_random_maps():
    rng = np.random.default_rng(0)
    for image in random_images(rng, 160):
        levels = np.unique(np.concatenate([[-1, 254], rng.integers(-1, 255, size=12)]))
        got = kernel_boxes(image, levels)
        for level in levels.tolist():
            assert got[level] == opencv_boxes(image, level), (image.shape, level)


@needs_kernel
def test_many_boxes_grow_the_output_and_all_come_back():
    image = np.random.default_rng(1).integers(0, 256, size=(64, 64)).astype(np.uint8)  # noise: many components
    levels = np.arange(-1, 255, dtype=np.int32)  # every level: thousands of boxes, the buffer grows many times
    rows = np.frombuffer(level_sets.level_set_boxes(image, 64, 64, levels), dtype=np.int32).reshape(-1, 6)
    contours = [
        cv2.findContours((image > v).astype(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0] for v in levels
    ]
    assert len(rows) == sum(len(c) for c in contours) > 10000  # one row per OpenCV contour, none lost
    got = kernel_boxes(image, levels)
    for level in (-1, 0, 100, 200, 254):
        assert got[level] == opencv_boxes(image, level)


@needs_kernel
@pytest.mark.parametrize(
    "levels, shape, message",
    [
        ([3, 3], (4, 4), "strictly increasing"),
        ([5, 2], (4, 4), "strictly increasing"),
        ([255], (4, 4), r"\[-1, 254\]"),
        ([-2], (4, 4), r"\[-1, 254\]"),
        ([1], (4, 5), "height \\* width"),
        (np.array([1, 2, 3], np.uint8), (4, 4), "a buffer of int32"),  # 3 bytes: not int32 values
    ],
)
def test_kernel_rejects_bad_input(levels, shape, message):
    image = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match=message):
        levels = levels if isinstance(levels, np.ndarray) else np.array(levels, np.int32)
        level_sets.level_set_boxes(image, *shape, levels)


def cam_maps(rng: np.random.Generator):
    """224x224 maps as the protocol sees them: upsampled grids of several coarsenesses and a noise map."""
    maps = [
        cv2.resize(rng.random((14, 14)), (224, 224), interpolation=cv2.INTER_CUBIC),
        cv2.resize(rng.random((28, 28)), (224, 224), interpolation=cv2.INTER_NEAREST),
        cv2.resize(rng.random((7, 7)), (224, 224), interpolation=cv2.INTER_LINEAR),
        rng.random((224, 224)),
    ]
    return [normalize_scoremap(m) for m in maps]


@pytest.mark.parametrize("interval", [pytest.param(0.01, marks=pytest.mark.slow), 0.001])
def test_kernel_fallback_and_loop_agree(monkeypatch, interval):
    rng = np.random.default_rng(2)
    thresholds = cam_thresholds(interval)
    gt = np.array([[30, 40, 150, 190], [100, 0, 223, 90]])
    maps = cam_maps(rng)[: 4 if interval == 0.01 else 3]  # the noise map's 1000-threshold loop takes 10 s
    loop = [iou_curve_loop(m, gt, thresholds) for m in maps]
    fast = [iou_curve(m, gt, thresholds) for m in maps]  # the kernel where built
    monkeypatch.setattr(localization, "_level_sets", None)
    fallback = [iou_curve(m, gt, thresholds) for m in maps]  # one findContours per distinct level
    for a, b, c in zip(loop, fast, fallback, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_thresholds_outside_the_unit_interval_match_the_loop():
    scoremap = cam_maps(np.random.default_rng(3))[0]
    thresholds = np.array([-2.0, -0.5, 0.0, 0.5, 0.999, 1.0, 1.5])  # masks: everything ... empty
    gt = np.array([[0, 0, 100, 100]])
    np.testing.assert_array_equal(iou_curve(scoremap, gt, thresholds), iou_curve_loop(scoremap, gt, thresholds))
