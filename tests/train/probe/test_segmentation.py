"""The linear segmentation probe's recipe: its warm-up and poly schedule, its random crops."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from simpool.evaluate.segmentation import IGNORE_INDEX, FrozenPatchFeatures, LinearSegmentationHead
from simpool.train.engine import single_process
from simpool.train.probe.segmentation import SegmentationProbeRecipe, train_sample


def test_warmup_then_poly_decay_per_update(tiny_vit):
    # factor(u) = (1 - u / 4) x min(1, (u + 1) / 2): 0.5, 0.75, 0.5, 0.25 for the 4 updates
    head = LinearSegmentationHead(32, 3)
    backbone = FrozenPatchFeatures(tiny_vit(num_classes=0), [0])
    recipe = SegmentationProbeRecipe(backbone, head, [], iterations=4, batch_size=2, crop=32, lr=0.1, warmup=2)
    parts = recipe.build(single_process())
    seen = []
    for update in range(1, 5):
        seen.append(parts.optimizer.param_groups[0]["lr"])
        parts.optimizer.step()  # no gradient: nothing moves, as the engine steps before the schedule
        parts.schedule.after_update(update)
    assert seen == pytest.approx([0.05, 0.075, 0.05, 0.025])
    assert (parts.epochs, parts.updates_per_epoch, parts.optimizer.defaults["weight_decay"]) == (1, 4, 0.05)


def test_a_crop_pads_the_label_with_ignore_and_keeps_image_and_label_aligned():
    image = Image.fromarray(np.arange(10 * 20 * 3, dtype=np.uint8).reshape(10, 20, 3) % 200 + 50)
    label = Image.fromarray(np.tile(np.arange(20, dtype=np.uint8), (10, 1)) % 3 + 1)  # columns of classes 1-3
    padded_pixels = 0
    for seed in range(5):
        crop_image, crop_label = train_sample(image, label, 16, np.random.default_rng(seed))
        pixels, labels = np.asarray(crop_image), np.asarray(crop_label)
        assert crop_image.size == crop_label.size == (16, 16)
        padded = labels == IGNORE_INDEX
        assert set(np.unique(labels)) <= {1, 2, 3, IGNORE_INDEX}
        assert (pixels[padded] == 0).all() and (pixels[~padded] >= 50).all()  # the black padding is ignored
        padded_pixels += padded.sum()
    assert padded_pixels > 0  # a crop larger than the rescaled image: padded
