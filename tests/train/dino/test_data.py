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
