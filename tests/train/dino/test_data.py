"""The multi-crop augmentation and its collate function."""

from __future__ import annotations

import pytest
from PIL import Image

from simpool.train.dino.data import MultiCropTransform, collate_crops


def test_multicrop_shapes_and_collate():
    transform = MultiCropTransform((0.25, 1.0), (0.05, 0.25), local_crops_number=6, global_size=32, local_size=16)
    assert transform.num_crops == 8
    image = Image.new("RGB", (40, 50), (120, 30, 200))
    crops = transform(image)
    assert [tuple(c.shape) for c in crops] == [(3, 32, 32)] * 2 + [(3, 16, 16)] * 6
    batch, targets, skipped = collate_crops([(crops, 1), None, (transform(image), 0)])
    assert [tuple(c.shape) for c in batch] == [(2, 3, 32, 32)] * 2 + [(2, 3, 16, 16)] * 6
    assert targets.tolist() == [1, 0] and skipped == 1


def test_multicrop_rejects_bad_scales():
    with pytest.raises(ValueError, match="local_crops_scale"):
        MultiCropTransform(local_crops_scale=(0.5, 0.1))
    with pytest.raises(ValueError, match="local_crops_number"):
        MultiCropTransform(local_crops_number=-1)


def test_a_pair_gives_the_first_global_and_even_local_crops_from_its_first_image():
    import torch

    from simpool.data.datasets import seeded

    transform = MultiCropTransform((0.5, 1.0), (0.1, 0.3), local_crops_number=4, global_size=16, local_size=8)
    black, grey = Image.new("RGB", (24, 24), (0, 0, 0)), Image.new("RGB", (24, 24), (100, 100, 100))
    with seeded(3):
        crops = transform((black, grey))
    black_value = transform.global_1.transforms[-1](black)[:, :1, :1]  # (3, 1, 1): black, normalised per channel
    from_black = [bool((crop == black_value).all()) for crop in crops]  # jitter, blur and solarize keep black black
    assert from_black == [True, False, True, False, True, False]  # global 1, global 2, locals 0..3
    with seeded(3):
        alone = transform(grey)
    with seeded(3):
        twice = transform((grey, grey))
    assert all(torch.equal(a, b) for a, b in zip(alone, twice, strict=True))  # one image twice: its own crops
