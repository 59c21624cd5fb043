"""The one scorer of attention maps: MaxBoxAccV2, DINO-seg CorLoc and the mass in the object's mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from simpool.evaluate.attention_quality import (
    attention_quality,
    baseline_scores,
    constant_maps,
    mask_mass,
    read_scores,
    strongest_baseline,
)
from simpool.evaluate.localization import pxap


def test_mask_mass_hand_computed():
    # map 1 puts weights 1, 3 on the two masked pixels of 4 (total 1+3+2+2 = 8): 4/8 = 0.5;
    # map 2 is uniform and 1 of its 4 pixels is masked: 0.25; the mean is 0.375
    maps = np.array([[[1.0, 3.0], [2.0, 2.0]], [[1.0, 1.0], [1.0, 1.0]]])
    masks = np.array([[[True, True], [False, False]], [[True, False], [False, False]]])
    assert mask_mass(maps, masks) == 0.375
    assert mask_mass(-maps, masks) == 0.0  # negative attention counts as none
    with pytest.raises(ValueError, match=r"maps \(2, 2, 2\) and masks \(1, 2, 2\) differ in shape"):
        mask_mass(maps, masks[:1])


def test_mask_mass_sums_in_the_maps_precision():
    # float32 maps (a model's) are summed in float32, float64 ones in float64: the same numbers as the sums
    # written out in each precision
    maps = np.random.default_rng(0).random((3, 16, 16))
    masks = np.zeros((3, 16, 16), dtype=bool)
    masks[:, 4:12, 2:9] = True
    for dtype in (np.float32, np.float64):
        typed = maps.astype(dtype)
        by_hand = ((typed * masks.astype(dtype)).sum((1, 2)) / typed.sum((1, 2))).mean()
        assert by_hand.dtype == dtype and mask_mass(typed, masks) == float(by_hand)


def test_attention_quality_of_hand_made_maps():
    # two 4 x 4 maps of 8-pixel patches on 32-pixel images, each object the top-left 16 x 16 pixels (2 x 2 patches)
    maps = np.zeros((2, 4, 4), dtype=np.float32)
    maps[0, :2, :2] = 1.0  # on the object: DINO-seg keeps its 4 patches, the object's box
    maps[1, 3, 3] = 1.0  # on the far corner: DINO-seg's box is that patch, IoU 0
    boxes = [np.array([[0, 0, 16, 16]])] * 2
    masks = np.zeros((2, 32, 32), dtype=bool)
    masks[:, :16, :16] = True
    scores = attention_quality(maps, boxes, [(32, 32)] * 2, masks, patch_size=8)
    assert scores["CorLoc"] == 50.0
    assert scores["uniform_mask_mass"] == 0.25
    # map 0 finds the box at every IoU level, map 1 at none
    assert (scores["MaxBoxAccV2"], scores["BoxAcc@50"]) == (50.0, 50.0)
    # the maps upsampled bilinearly to the masks: map 1's mass stays within half a patch of its corner patch
    upsampled = F.interpolate(torch.from_numpy(maps)[:, None], size=32, mode="bilinear")[:, 0].numpy()  # (2, 32, 32)
    inside = (upsampled * masks).sum((1, 2)) / upsampled.sum((1, 2))  # (2,)
    assert inside[1] == 0.0 and scores["mask_mass"] == pytest.approx(inside.mean(), rel=1e-6)
    assert set(attention_quality(maps, boxes, [(32, 32)] * 2)) == {"MaxBoxAccV2", "BoxAcc@50"}  # no CorLoc
    assert scores["PxAP"] == pytest.approx(pxap(maps, masks.astype(np.uint8)))  # beside the mass, threshold-free


def test_baselines_are_scored_as_a_model_is():
    # 4 x 4 grids of 8-pixel patches on 32-pixel images; every object fills the top-left quarter
    boxes = [np.array([[0, 0, 16, 16]])] * 3
    masks = np.zeros((3, 32, 32), dtype=bool)
    masks[:, :16, :16] = True
    sizes = [(32, 32)] * 3
    model = np.zeros((3, 4, 4), dtype=np.float32)
    model[:, :2, :2] = 1.0  # a model that always looks at the top-left: its mean map is itself
    scores = baseline_scores((4, 4), masks, boxes, sizes, masks, patch_size=8, model_maps={"m": model})
    assert sorted(scores) == ["box_prior", "centre", "mean_map/m", "uniform"]
    assert scores["mean_map/m"] == attention_quality(model, boxes, sizes, masks, patch_size=8)
    # the training objects' mean is this very object, the model's map cell for cell: the same scores
    assert scores["box_prior"] == scores["mean_map/m"] and scores["box_prior"]["MaxBoxAccV2"] == 100.0
    # the uniform map's mass is the mean mask area (its noise is a millionth of its value)
    assert scores["uniform"]["mask_mass"] == pytest.approx(0.25, rel=1e-5)
    assert strongest_baseline(scores) == ("box_prior", 100.0)  # mean_map/m is a model's, not image-independent
    with pytest.raises(ValueError, match="no image-independent baseline has 'CorLoc2'"):
        strongest_baseline(scores, "CorLoc2")


def test_constant_maps_rank_nothing_and_get_no_ranking_score():
    # GAP's attention: one value everywhere. Min-max normalising it gives zeros, which would score MaxBoxAccV2 0 and
    # PxAP the mask share, as if it were a map; it is none, so those scores are None and its mass the uniform one
    boxes = [np.array([[0, 0, 16, 16]])] * 2
    masks = np.zeros((2, 32, 32), dtype=bool)
    masks[:, :16, :16] = True
    flat = np.full((2, 4, 4), 1 / 16, dtype=np.float32)
    scores = attention_quality(flat, boxes, [(32, 32)] * 2, masks, patch_size=8)
    assert {key: scores[key] for key in ("MaxBoxAccV2", "BoxAcc@50", "CorLoc", "PxAP")} == dict.fromkeys(
        ("MaxBoxAccV2", "BoxAcc@50", "CorLoc", "PxAP")
    )
    assert scores["mask_mass"] == pytest.approx(0.25) and scores["uniform_mask_mass"] == 0.25
    # one constant map among others is scored as the reference scores it (it finds no box)
    mixed = flat.copy()
    mixed[0, :2, :2] = 1.0
    assert not constant_maps(mixed) and constant_maps(flat) and not constant_maps(flat[:0])
    assert attention_quality(mixed, boxes, [(32, 32)] * 2)["MaxBoxAccV2"] == 50.0
    # scores written before this rule read the same way; a real 0 with more than the uniform mass stays
    old = {"MaxBoxAccV2": 0.0, "BoxAcc@50": 0.0, "PxAP": 25.0, "mask_mass": 0.25000001, "uniform_mask_mass": 0.25}
    assert read_scores(old) == old | {"MaxBoxAccV2": None, "BoxAcc@50": None, "PxAP": None}
    real = old | {"mask_mass": 0.3}
    assert read_scores(real) == real
