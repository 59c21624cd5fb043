"""LOST, DINO-seg and CorLoc (valeoai/LOST): planted objects on key grids, the reference's quirks, IoU edge cases,
and DINO-seg of every head, the best head and the mean over heads."""

import numpy as np
import pytest
import torch

from simpool.evaluate.discovery import (
    box_iou_lost,
    cls_vit_keys,
    corloc,
    dino_seg,
    head_boxes,
    head_corlocs,
    keep_mass,
    lost,
    lost_seed,
)
from simpool.models import pool_input

BACKGROUND, OBJECT = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])  # b.b = 1, o.o = 2, b.o = -1


def key_grid(rows, cols, object_cells):
    keys = BACKGROUND.repeat(rows * cols, 1)  # (N, 2)
    for r, c in object_cells:
        keys[r * cols + c] = OBJECT
    return keys


def test_lost_finds_the_planted_object_and_clips_to_the_image():
    # 6x8 grid, object on rows 4-5, cols 5-7: its patches have degree 5, the background 41, so the seed
    # is the first object patch; M > 0 exactly on the object. Box (5*16, 4*16, 8*16, 6*16) = (80, 64, 128, 96),
    # clipped to the unpadded 90-pixel height.
    cells = [(r, c) for r in (4, 5) for c in (5, 6, 7)]
    keys = key_grid(6, 8, cells)
    seed, degree, _ = lost_seed(keys)
    assert seed == 4 * 8 + 5 and int(degree[seed]) == 5 and int(degree[0]) == 41
    assert lost(keys, (6, 8), 16, (90, 128)).tolist() == [80, 64, 128, 90]


def test_lost_keeps_only_the_seed_component():
    # two identical objects: M > 0 on both, but only the 4-connected component holding the seed is boxed
    cells = [(0, 0), (0, 1), (1, 0), (1, 1), (4, 4), (4, 5), (5, 4), (5, 5)]
    assert lost(key_grid(6, 6, cells), (6, 6), 16, (96, 96)).tolist() == [0, 0, 32, 32]


def test_lost_components_are_4_connected():
    # diagonal neighbours are separate components: the box is the seed patch (1, 1) alone
    assert lost(key_grid(4, 4, [(1, 1), (2, 2)]), (4, 4), 8, (32, 32)).tolist() == [8, 8, 16, 16]


def test_lost_k_patches_limits_the_expansion():
    # k = 1: M is the seed's row only, A_s = o.k > 0 on both objects alike; the seed's component stays
    cells = [(0, 0), (0, 1), (3, 3)]
    assert lost(key_grid(4, 4, cells), (4, 4), 16, (64, 64), k_patches=1).tolist() == [0, 0, 32, 16]


def test_lost_bad_inputs():
    with pytest.raises(ValueError, match="grid_hw"):
        lost(key_grid(4, 4, [(0, 0)]), (4, 5), 16, (64, 80))
    with pytest.raises(ValueError, match="background"):
        lost(torch.zeros(16, 3), (4, 4), 16, (64, 64))


def test_keep_mass():
    # ascending 0.1, 0.2, 0.3, 0.4: cumulative 0.1, 0.3, 0.6, 1.0 > 0.4 keeps the two largest
    assert keep_mass(torch.tensor([0.3, 0.1, 0.4, 0.2])).tolist() == [True, False, True, False]


def two_blob_attention(single_first: bool):
    """5x5 attention: a 3-patch blob of 0.15 each, a 1-patch blob of 0.2, 21 patches sharing 0.35.

    Sorted ascending the background sums to 0.35 <= 0.4, so exactly the two blobs are kept.
    """
    attention = torch.full((5, 5), 0.35 / 21)
    small, big_row = ((0, 0), 3) if single_first else ((3, 4), 0)
    attention[small] = 0.2
    attention[big_row, 0:3] = 0.15
    return attention


def test_dino_seg_picks_the_biggest_component():
    assert dino_seg(two_blob_attention(False), (5, 5), 16, (80, 80)).tolist() == [0, 0, 48, 16]
    assert dino_seg(two_blob_attention(True), (5, 5), 16, (80, 80)).tolist() == [0, 48, 48, 64]


def test_dino_seg_reference_quirk():
    # the big blob labelled first (label 1) is found by both; labelled last (label 2) the quirk never
    # considers it and picks label 1, the single patch at (0, 0)
    assert dino_seg(two_blob_attention(False), (5, 5), 16, (80, 80), reference_quirk=True).tolist() == [0, 0, 48, 16]
    assert dino_seg(two_blob_attention(True), (5, 5), 16, (80, 80), reference_quirk=True).tolist() == [0, 0, 16, 16]


def test_dino_seg_single_component_quirk_boxes_the_background_unclipped():
    attention = torch.full((5, 5), 0.3 / 22)
    attention[2, 1:4] = 0.7 / 3  # one blob holding 70% of the mass
    assert dino_seg(attention, (5, 5), 16, (70, 75)).tolist() == [16, 32, 64, 48]
    # the quirk selects label 0, the background: the whole padded grid, not clipped to 70x75
    assert dino_seg(attention, (5, 5), 16, (70, 75), reference_quirk=True).tolist() == [0, 0, 80, 80]


def test_iou_has_no_plus_one():
    # (0, 0, 10, 10) and (5, 0, 15, 10): inter 50, union 150
    assert float(box_iou_lost([0, 0, 10, 10], [[5, 0, 15, 10]])[0]) == pytest.approx(1 / 3, rel=1e-6)


def test_corloc_edge_cases():
    pred = np.array([0, 0, 10, 10])
    # IoU 100 / 200 is exactly 0.5 in the reference's float32 (eps vanishes): correct, inclusive
    assert corloc([pred], [np.array([[0, 0, 10, 20]])]) == 100.0
    assert corloc([pred], [np.array([[0, 0, 10, 21]])]) == 0.0  # 100 / 210
    # any ground-truth box counts; an image without boxes counts as wrong
    gts = [np.array([[50, 50, 60, 60], [0, 0, 10, 10]]), np.zeros((0, 4)), np.array([[20, 20, 30, 30]])]
    assert corloc([pred, pred, pred], gts) == pytest.approx(100 / 3)
    with pytest.raises(ValueError, match="images"):
        corloc([pred], [])


def test_keys_are_what_the_model_computes(tiny_vit):
    torch.manual_seed(0)
    image = torch.randn(1, 3, 32, 48)  # 16-px patches: a 2 x 3 grid
    vit = tiny_vit(pool="default", num_classes=0, patch_size=16, dynamic_img_size=True).eval()
    keys = cls_vit_keys(vit, image)
    # independent: the last block's normalised input through W_K (the middle third of qkv), CLS dropped
    captured = {}
    handle = vit.blocks[-1].attn.register_forward_pre_hook(lambda m, a: captured.setdefault("x", a[0]))
    vit.forward_features(image)
    handle.remove()
    C = vit.embed_dim
    expected = captured["x"] @ vit.blocks[-1].attn.qkv.weight[C : 2 * C].T + vit.blocks[-1].attn.qkv.bias[C : 2 * C]
    assert keys.shape == (6, C)
    torch.testing.assert_close(keys, expected[0, 1:])
    simpool_vit = tiny_vit(num_classes=0, patch_size=16, dynamic_img_size=True).eval()
    tokens = pool_input(simpool_vit, image)  # (1, 6, C): the normed patch tokens, no CLS token
    assert tokens.shape == (1, 6, C) and simpool_vit.num_prefix_tokens == 0
    torch.testing.assert_close(tokens, simpool_vit.forward_features(image))


def blob(cells, value) -> torch.Tensor:
    """A 4x4 map of ``value`` on ``cells`` (``(row, col)``), 0 elsewhere."""
    grid = torch.zeros(4, 4)
    for r, c in cells:
        grid[r, c] = value
    return grid


TOP_LEFT = [(0, 0), (0, 1), (1, 0), (1, 1)]  # the 2x2 patches of the box (0, 0, 32, 32) at 16 px
BOTTOM_RIGHT = [(2, 2), (2, 3), (3, 2), (3, 3)]  # those of (32, 32, 64, 64)


def test_dino_seg_of_every_head_the_best_head_and_the_mean_over_heads(tiny_vit, tmp_path, monkeypatch):
    # two 64x64 images (a 4x4 grid of 16-px patches); image 0's object is top-left, image 1's bottom-right.
    # Head 0 looks at the object in both (CorLoc 100); head 1 at the other corner in both (0). The mean over heads:
    # on image 0, head 1's blob (3.0) outweighs head 0's (1.0), so the 60% of the mass lies on the wrong corner
    # (wrong); on image 1, head 0's (1.0) outweighs head 1's (0.2): right. CorLoc of the mean map: 50
    from PIL import Image

    import simpool.models.attention as attention
    from simpool.evaluate.discovery import discover

    maps = [
        torch.stack([blob(TOP_LEFT, 1.0), blob(BOTTOM_RIGHT, 3.0)]),  # image 0: (heads, h, w)
        torch.stack([blob(BOTTOM_RIGHT, 1.0), blob(TOP_LEFT, 0.2)]),  # image 1
    ]
    calls = iter(maps)
    monkeypatch.setattr(attention, "cls_attention_all", lambda model, image: next(calls)[None, None])  # (1, 1, ...)
    items = []
    for index, box in enumerate(([0, 0, 32, 32], [32, 32, 64, 64])):
        path = tmp_path / f"{index}.png"
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(path)
        items.append((path.name, path, np.array([box])))
    vit = tiny_vit(pool="default", img_size=64, patch_size=16, num_heads=2).eval()
    boxes, score = discover(vit, items, method="dino_seg", source="cls_head", head=1, progress=False)
    assert boxes == {"0.png": [32, 32, 64, 64], "1.png": [0, 0, 32, 32]}  # head 1's boxes, as asked
    assert score == {
        "CorLoc": 0.0,
        "correct": 0,
        "images": 2,
        "per_head_CorLoc": [100.0, 0.0],
        "best_head": 0,
        "best_head_CorLoc": 100.0,
        "mean_heads_CorLoc": 50.0,
    }


def test_head_corlocs_picks_the_first_best_head():
    gts = [np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10]])]
    right, wrong = [0, 0, 10, 10], [20, 20, 30, 30]
    boxes = [np.array([wrong, right, right, wrong]), np.array([right, right, right, right])]  # 3 heads, then mean
    assert head_corlocs(boxes, gts) == {
        "per_head_CorLoc": [50.0, 100.0, 100.0],
        "best_head": 1,
        "best_head_CorLoc": 100.0,
        "mean_heads_CorLoc": 50.0,
    }


def test_head_boxes_are_each_heads_and_the_mean_maps(tiny_vit):
    from simpool.models import attention_maps

    torch.manual_seed(0)
    vit = tiny_vit(pool="default", img_size=64, patch_size=16, num_heads=2).eval()
    image = torch.randn(1, 3, 64, 64)
    boxes = head_boxes(vit, image, (64, 64))
    expected = [attention_maps(vit, image, "cls_head", head=h)[0] for h in (0, 1)] + [attention_maps(vit, image)[0]]
    assert boxes.tolist() == [dino_seg(m, (4, 4), 16, (64, 64)).tolist() for m in expected]
