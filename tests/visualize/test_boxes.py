"""Boxes from maps: exact boxes on hand-made maps, wsolevaluation's IoU, ground-truth files."""

import json

import numpy as np
import pytest

from simpool.visualize import attention_box, box_iou, draw_boxes, read_boxes
from simpool.visualize.boxes import boxes_for, scale_box


def test_box_of_a_block_of_patches():
    # ones on the top-left 2x2 patches of a 4x4 map, upsampled x2 to 8x8 bilinearly: pixel row 3 sits
    # at source row 1.25 (value 0.75 >= 0.5), row 4 at 1.75 (0.25 < 0.5), so the box is rows/cols 0..3
    attention = np.zeros((4, 4))
    attention[:2, :2] = 1.0
    assert attention_box(attention, (8, 8)) == (0, 0, 3, 3)
    # the same map on a 16x8 (W x H) image stretches horizontally: columns 0..7
    assert attention_box(attention, (16, 8)) == (0, 0, 7, 3)


def test_largest_component_wins():
    # a single bright patch (top-left) and a larger bright region (bottom-right 2x3) of equal value
    attention = np.zeros((6, 6))
    attention[0, 0] = 1.0
    attention[4:6, 3:6] = 1.0
    assert attention_box(attention, (6, 6)) == (3, 4, 5, 5)


def test_constant_map_gives_the_whole_image():
    assert attention_box(np.ones((3, 3)), (10, 7)) == (0, 0, 9, 6)


def test_iou_inclusive_pixels():
    # (0,0,9,9) and (5,0,14,9): 10x10 boxes overlapping in 5x10 pixels -> 50 / (100 + 100 - 50)
    assert box_iou((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 9, 9), (0, 0, 9, 9)) == 1.0
    assert box_iou((0, 0, 4, 4), (5, 5, 9, 9)) == 0.0
    assert scale_box((10, 20, 30, 40), (100, 100), (50, 200)) == (5, 40, 15, 80)


def test_draw_boxes_outlines_in_color():
    out = draw_boxes(np.zeros((10, 10, 3)), [(2, 2, 7, 7)], [(0.0, 1.0, 0.0)], width=1)
    np.testing.assert_allclose(out[2, 2:8], np.broadcast_to([0, 1, 0], (6, 3)))  # top edge
    np.testing.assert_allclose(out[4, 4], [0, 0, 0])  # inside stays untouched


def test_read_boxes_json_and_localization_txt(tmp_path):
    (tmp_path / "boxes.json").write_text(
        json.dumps({"a.png": [[1, 2, 3, 4]], "sub/b.png": [[0, 0, 5, 5], [1, 1, 2, 2]]})
    )
    (tmp_path / "localization.txt").write_text("val/a.png,1,2,3,4\nval/a.png,5,6,7,8\n")
    from_json = read_boxes(tmp_path / "boxes.json")
    assert from_json == {"a.png": [(1, 2, 3, 4)], "sub/b.png": [(0, 0, 5, 5), (1, 1, 2, 2)]}
    from_txt = read_boxes(tmp_path / "localization.txt")
    assert from_txt == {"val/a.png": [(1, 2, 3, 4), (5, 6, 7, 8)]}
    assert boxes_for(tmp_path / "data" / "val" / "a.png", from_txt) == [(1, 2, 3, 4), (5, 6, 7, 8)]
    assert boxes_for(tmp_path / "c.png", from_txt) == []
    (tmp_path / "bad.txt").write_text("a.png,1,2,3\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        read_boxes(tmp_path / "bad.txt")
