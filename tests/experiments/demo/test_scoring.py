"""The demo's scoring: accuracy per variant and the attention through ``evaluate.attention_quality``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simpool.data.bench import SimPoolBench
from simpool.evaluate.discovery import corloc, dino_seg
from simpool.evaluate.localization import max_box_acc_v2
from simpool.evaluate.pixel_ap import pxap
from simpool.experiments.demo import (
    EVAL_VARIANTS,
    GATE,
    bench_vit,
    curve_steps,
    demo_config,
    eval_datasets,
    evaluate_model,
    predict,
    score_model,
)
from tests.experiments.conftest import needs_fmnist


def test_curve_steps_are_even_and_end_at_the_last_update():
    # k * 15 / 12 for k = 0..12, rounded half to even (2.5 -> 2, 7.5 -> 8, 12.5 -> 12): 13 distinct updates
    assert curve_steps(15, 12) == [0, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 14, 15]
    assert curve_steps(4, 12) == [0, 1, 2, 3, 4]  # fewer updates than points: every update
    assert curve_steps(625, 12)[-1] == 625 and len(curve_steps(625, 12)) == 13
    assert curve_steps(10, 0) == []


@needs_fmnist
def test_evaluate_model_by_hand():
    # an untrained SimPool ViT on 12 images: every number recomputed from the predictions and maps here
    config = demo_config("quick", depth=1, eval_images=12)
    torch.manual_seed(0)
    model, device = bench_vit("simpool", config), torch.device("cpu")
    result = evaluate_model("simpool", model, config, device, progress=False)
    outputs = {}
    for variant in EVAL_VARIANTS:
        data = SimPoolBench(config.eval_split, variant, config.bench(), num_images=12)
        outputs[variant] = predict(model, data, device, "pool" if variant == "original" else None)
        assert result[f"acc_{variant}"] == np.mean(outputs[variant]["pred"] == outputs[variant]["labels"])
    assert result["bg_gap"] == result["acc_mixed_same"] - result["acc_mixed_rand"]
    assert result["learned_object"] == (result["acc_mixed_rand"] >= GATE)
    maps, boxes, masks = (outputs["original"][key] for key in ("maps", "boxes", "masks"))  # (12, 8, 8), (12, 64, 64)
    assert maps.shape == (12, 8, 8) and maps.dtype == np.float32
    gts = [[box.tolist()] for box in boxes]
    by_box = max_box_acc_v2(maps, gts, [(64, 64)] * 12)
    assert (result["MaxBoxAccV2"], result["BoxAcc@50"]) == (by_box["MaxBoxAccV2"], by_box["BoxAcc@50"])
    assert result["CorLoc"] == corloc([dino_seg(torch.from_numpy(m), (8, 8), 8, (64, 64)) for m in maps], gts)
    # the mass: the map upsampled bilinearly to the mask, sum_p m_p A_p / sum_p A_p, averaged over images
    upsampled = torch.nn.functional.interpolate(torch.from_numpy(maps)[:, None], size=64, mode="bilinear")[:, 0]
    attention = upsampled.double().clamp(min=0).numpy()
    assert result["mask_mass"] == pytest.approx(((attention * masks).sum((1, 2)) / attention.sum((1, 2))).mean())
    assert result["uniform_mask_mass"] == masks.mean()
    assert result["PxAP"] == pxap(maps, masks.astype(np.uint8))
    # score_model: the same scores from images rendered once, and the maps it scored
    datasets = eval_datasets(config, config.eval_split)
    assert sorted(datasets) == sorted(EVAL_VARIANTS) and len(datasets["original"]) == 12
    scored, outputs = score_model("simpool", model, config, device, datasets, progress=False)
    assert scored == result and np.array_equal(outputs["maps"], maps) and np.array_equal(outputs["masks"], masks)
    with pytest.raises(ValueError, match="must include 'original'"):
        evaluate_model("simpool", model, config, device, False, ("mixed_rand",))
    with pytest.raises(ValueError, match="must include 'original'"):
        score_model("simpool", model, config, device, {"mixed_rand": datasets["mixed_rand"]})
