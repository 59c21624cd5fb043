"""The maps the demo compares each model's attention with: those that ignore the image, each model at
initialisation and each model's own mean map, on the same images as the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simpool.data.bench import SimPoolBench
from simpool.evaluate.attention_quality import attention_quality
from simpool.evaluate.baselines import box_prior, centre, uniform
from simpool.experiments.demo import (
    ATTENTION_KEYS,
    attention_scores,
    demo_baselines,
    demo_config,
    fixed_baselines,
    initial_vit,
    mean_map_scores,
    predict,
    train_masks,
)
from tests.experiments.conftest import needs_fmnist

CONFIG = demo_config("quick", depth=1, eval_images=12, seed=4)


def objects(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` boxes ``(count, 4)`` and masks ``(count, 64, 64)``: a filled square of side 16-31 at random."""
    rng = np.random.default_rng(seed)
    boxes, masks = np.zeros((count, 4), np.int64), np.zeros((count, 64, 64), bool)
    for i in range(count):
        side = rng.integers(16, 32)
        x, y = rng.integers(0, 64 - side, 2)
        boxes[i] = (x, y, x + side, y + side)
        masks[i, y : y + side, x : x + side] = True
    return boxes, masks


def test_fixed_baselines_score_the_maps_that_ignore_the_image():
    boxes, masks = objects(10)
    prior = objects(30, seed=1)[1]
    scored = fixed_baselines(boxes, masks, CONFIG, prior)
    gts, sizes = [[b.tolist()] for b in boxes], [(64, 64)] * 10
    expected = {  # on the models' 8 x 8 grid; the uniform map's noise seeded by the config's seed
        "uniform": uniform(10, (8, 8), seed=4),
        "centre": centre(10, (8, 8)),
        "box_prior": box_prior(10, (8, 8), masks=prior),
    }
    assert list(scored) == list(expected)
    for name, maps in expected.items():
        direct = attention_quality(maps, gts, sizes, masks, patch_size=8)
        assert scored[name] == {key: direct[key] for key in ATTENTION_KEYS}, name


def test_a_models_mean_map_is_its_maps_when_they_do_not_change():
    boxes, masks = objects(10)
    rng = np.random.default_rng(2)
    one = rng.random((8, 8)).astype(np.float32)
    outputs = {"boxes": boxes, "masks": masks, "maps": one[None] * rng.uniform(1, 3, (10, 1, 1)).astype(np.float32)}
    # each map scaled to sum 1, then averaged: the same map as each, up to the scale, which no score sees
    same = {key: value for key, value in attention_scores(outputs, 8).items() if key in ATTENTION_KEYS}
    assert mean_map_scores(outputs, 8) == pytest.approx(same)
    # maps that move with the object: their mean is one map for all images, scored so
    maps = np.stack([np.asarray(m, np.float32)[::8, ::8] for m in masks])  # (10, 8, 8): the mask's patches
    moving = {**outputs, "maps": maps}
    mean = np.repeat((maps / maps.sum((1, 2), keepdims=True)).mean(0, keepdims=True), 10, axis=0)
    direct = attention_quality(mean, [[b.tolist()] for b in boxes], [(64, 64)] * 10, masks, patch_size=8)
    assert mean_map_scores(moving, 8) == {key: direct[key] for key in ATTENTION_KEYS}


@needs_fmnist
def test_train_masks_and_init_are_the_training_splits_and_the_initial_models():
    config = demo_config("quick", depth=1, train_images=30, eval_images=12)
    prior = train_masks(config)  # the first min(2000, train_images) training images' masks
    expected = SimPoolBench("train", "original", config.bench(), num_images=30).batch(np.arange(30))[3].numpy()
    assert prior.shape == (30, 64, 64) and np.array_equal(prior, expected)
    original = SimPoolBench(config.eval_split, "original", config.bench(), num_images=12).rendered()
    device = torch.device("cpu")
    models = {kind: initial_vit(kind, config) for kind in ("cls", "simpool")}
    outputs = {kind: predict(m, original, device, "cls" if kind == "cls" else "pool") for kind, m in models.items()}
    initial = {kind: model.state_dict() for kind, model in models.items()}
    baselines = demo_baselines(config, device, original, outputs, initial, prior)
    assert list(baselines) == ["uniform", "centre", "box_prior", "init", "mean_map"]
    assert (
        baselines["uniform"]
        == fixed_baselines(outputs["cls"]["boxes"], outputs["cls"]["masks"], config, prior)["uniform"]
    )
    for kind, out in outputs.items():  # the models here are the initial ones: init scores their own maps
        scores = attention_scores(out, 8)
        accuracy = float((out["pred"] == out["labels"]).mean())
        assert baselines["init"][kind] == {"acc_original": accuracy, **{key: scores[key] for key in ATTENTION_KEYS}}
        assert baselines["mean_map"][kind] == mean_map_scores(out, 8)
