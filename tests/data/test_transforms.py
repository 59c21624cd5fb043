"""Training and evaluation transforms of a data section, and timm's augmentation splits as a transform."""

from __future__ import annotations

import torch
from PIL import Image

from simpool.data.config import DataConfig
from simpool.data.transforms import AugmentationSplits, build_transforms, split_transform

TRANSFORM = dict(input_size=(3, 32, 32), scale=(0.5, 1.0), hflip=0.5, color_jitter=0.0, re_mode="const")


def test_views_share_the_crop_and_the_clean_one_is_never_erased():
    image = Image.new("RGB", (48, 48), (200, 30, 90))  # constant: crops and flips cannot change it
    splits = split_transform(3, resplit=True, auto_augment="rand-m9-mstd0.5-inc1", re_prob=1.0, **TRANSFORM)
    plain = split_transform(3, resplit=False, re_prob=0.0, **TRANSFORM).clean_final
    for seed in range(5):
        torch.manual_seed(seed)
        views = splits(image)
        assert views.shape == (3, 3, 32, 32)
        torch.testing.assert_close(views[0], plain(splits.primary(image)))  # crop + flip + normalise, no erasing
        assert all((views[s] != views[0]).any() for s in (1, 2))  # every augmented view is erased (re_prob=1)
    erased = split_transform(3, resplit=False, re_prob=1.0, **TRANSFORM)(image)
    assert (erased[0] != views[0]).any()  # without resplit the clean view is erased too


def test_build_transforms_normalises_at_the_configured_size():
    data = DataConfig(img_size=24, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0), color_jitter=0.0)
    train, evaluation = build_transforms(data)
    image = Image.new("RGB", (40, 30), (255, 0, 128))  # constant: resizing, cropping and flipping keep it
    expected = torch.tensor([(1.0 - 0.5) / 0.25, (0.0 - 0.5) / 0.5, (128 / 255 - 0.5) / 1.0])  # (x - mean) / std
    for transform in (train, evaluation):
        out = transform(image)
        assert out.shape == (3, 24, 24)
        torch.testing.assert_close(out, expected[:, None, None].expand(3, 24, 24), atol=1e-5, rtol=0)
    splits, _ = build_transforms(DataConfig(img_size=24, aug_splits=3, resplit=True))
    assert isinstance(splits, AugmentationSplits) and splits(image).shape == (3, 3, 24, 24)  # (S, C, H, W)
