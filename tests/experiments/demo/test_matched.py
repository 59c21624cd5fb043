"""Matched accuracy: the level and checkpoints chosen on the validation curves, then scored on the evaluation
images; made-up images and curves, real checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simpool.data.bench import RenderedBench
from simpool.experiments.demo import (
    EVAL_VARIANTS,
    bench_vit,
    demo_config,
    matched_report,
    mean_map_scores,
    score_model,
)
from simpool.models import save_checkpoint

CONFIG = demo_config("quick", depth=1)


def images(count: int = 10, seed: int = 0) -> dict:
    """Made-up evaluation images of each variant: noise, a 24-pixel square object at a random place."""
    generator = torch.Generator().manual_seed(seed)
    xy = torch.randint(0, 40, (count, 2), generator=generator)
    boxes = torch.cat([xy, xy + 24], 1)  # (count, 4)
    masks = torch.zeros(count, 64, 64, dtype=torch.bool)
    for mask, (x, y) in zip(masks, xy.tolist(), strict=True):
        mask[y : y + 24, x : x + 24] = True
    labels = torch.randint(0, 10, (count,), generator=generator)

    def made(variant: str) -> RenderedBench:
        noise = torch.randint(0, 256, (count, 3, 64, 64), generator=generator, dtype=torch.uint8)
        return RenderedBench(noise, labels, boxes, masks)

    return {variant: made(variant) for variant in EVAL_VARIANTS}


def point(step: int, rand: float, checkpoint: str | None = None) -> dict:
    made = {"step": step, "epoch": step / 10, "top1_mixed_rand": rand, "MaxBoxAccV2": 30.0, "mask_mass": 0.2}
    return made if checkpoint is None else {**made, "checkpoint": checkpoint}


def test_checkpoints_chosen_on_val_are_scored_on_the_evaluation_images(tmp_path):
    datasets, device = images(), torch.device("cpu")
    models = {}
    for seed, kind in enumerate(("cls", "simpool")):
        torch.manual_seed(seed)
        models[kind] = bench_vit(kind, CONFIG)
    path = str(save_checkpoint(models["simpool"], tmp_path / "simpool_2.safetensors"))
    # val curves: CLS's best is 0.55 < 0.6, the level; CLS first reaches it at its last update (4), SimPool at 2
    curves = {
        "cls": [point(0, 0.1, "unused"), point(2, 0.5, "unused"), point(4, 0.55, "unused")],
        "simpool": [point(0, 0.1), point(2, 0.6, path), point(4, 0.7)],
    }
    final_result = {"acc_mixed_rand": 0.5, "MaxBoxAccV2": 40.0}
    final = {
        "cls": {"result": final_result, "steps": 4, "mean_map": {"MaxBoxAccV2": 33.0}},
        "simpool": {"result": {}, "steps": 4, "mean_map": {}},
    }
    matched = matched_report(curves, CONFIG, device, datasets, final)
    assert (matched["level"], matched["chosen_on"], matched["evaluated_on"]) == (0.55, "val", "test")
    assert matched["steps"] == {"cls": 4, "simpool": 2}
    assert matched["points"] == {"cls": curves["cls"][2], "simpool": curves["simpool"][1]}
    assert matched["checkpoints"] == {"cls": "unused", "simpool": path}
    # CLS's checkpoint is its trained model: the final evaluation's numbers; SimPool's is loaded and scored
    assert matched["results"]["cls"] == {"step": 4, **final_result}
    assert matched["mean_map"]["cls"] == {"MaxBoxAccV2": 33.0}
    result, outputs = score_model("simpool", models["simpool"], CONFIG, device, datasets, progress=False)
    assert matched["results"]["simpool"] == {"step": 2, **result}
    assert matched["mean_map"]["simpool"] == mean_map_scores(outputs, CONFIG.patch_size)
    assert np.isfinite(result["PxAP"])
    # no curves: nothing to match; a chosen point without its checkpoint cannot be scored
    assert matched_report({"cls": [], "simpool": []}, CONFIG, device, datasets, final) is None
    curves["simpool"][1].pop("checkpoint")
    with pytest.raises(ValueError, match="the simpool curve point of update 2 has no checkpoint"):
        matched_report(curves, CONFIG, device, datasets, final)
