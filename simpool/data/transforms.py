"""Training and evaluation transforms of a :class:`~simpool.data.config.DataConfig`: timm's
``create_transform``, and timm's augmentation splits (``--aug-splits``, ``--resplit``) as a transform.

With ``aug_splits = S >= 2`` each training image yields ``S`` views: a clean one (random crop and flip only)
and ``S - 1`` augmented ones (the same crop, then RandAugment / AugMix and colour jitter, then random
erasing), stacked as ``(S, C, H, W)``, the clean view first. ``resplit`` keeps random erasing off the clean
view, as timm's prefetcher does. (The training side, split-major batches, the JSD loss and split BatchNorm, is
in ``simpool.train.supervised.aug_splits``.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from timm.data import create_transform

from .config import DataConfig


class AugmentationSplits:
    """A training transform: image -> ``(S, C, H, W)``, the clean view first.

    timm's ``AugMixDataset`` as a transform rather than a dataset wrapper, so that our datasets keep
    their handling of unreadable images (a sample of ``None``).
    """

    def __init__(self, primary, secondary, final, clean_final, num_splits: int):
        self.primary, self.secondary, self.final, self.clean_final = primary, secondary, final, clean_final
        self.num_splits = num_splits

    def __call__(self, image) -> torch.Tensor:
        base = self.primary(image)  # the crop and flip every view shares
        views = [self.clean_final(base)]
        views += [self.final(self.secondary(base)) for _ in range(self.num_splits - 1)]
        return torch.stack(views)  # (S, C, H, W)

    def __repr__(self) -> str:
        return f"AugmentationSplits(num_splits={self.num_splits}, secondary={self.secondary})"


def split_transform(num_splits: int, resplit: bool, **transform_kwargs) -> AugmentationSplits:
    """:class:`AugmentationSplits` from timm's ``create_transform(is_training=True, separate=True, ...)``."""
    primary, secondary, final = create_transform(is_training=True, separate=True, **transform_kwargs)
    clean_final = final
    if resplit:  # the clean view is never erased
        clean_final = create_transform(is_training=True, separate=True, **{**transform_kwargs, "re_prob": 0.0})[2]
    return AugmentationSplits(primary, secondary, final, clean_final, num_splits)


def build_transforms(data: DataConfig) -> tuple[Callable, Callable]:
    """``(training, evaluation)`` transforms: timm ``create_transform`` for training (RandAugment, random
    erasing...; :class:`AugmentationSplits` with ``aug_splits``) and evaluation (resize, centre crop)."""
    common = dict(
        input_size=(data.in_chans, data.img_size, data.img_size),
        interpolation=data.interpolation,
        mean=tuple(data.mean),
        std=tuple(data.std),
    )
    train_kwargs = dict(
        scale=tuple(data.scale),
        hflip=data.hflip,
        color_jitter=data.color_jitter,
        auto_augment=data.auto_augment,
        re_prob=data.reprob,
        re_mode=data.remode,
        **common,
    )
    if data.aug_splits:  # (S, C, H, W) per image: a clean view and S - 1 augmented ones
        train = split_transform(data.aug_splits, data.resplit, **train_kwargs)
    else:
        train = create_transform(is_training=True, **train_kwargs)
    evaluation = create_transform(is_training=False, crop_pct=data.crop_pct, **common)
    return train, evaluation
