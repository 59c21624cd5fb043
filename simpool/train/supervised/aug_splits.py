"""Augmentation splits: timm's ``--aug-splits``, ``--resplit``, ``--jsd`` and ``--split-bn`` (AugMix training).

The paper's official ResNet-50 command trains with ``--aug-splits 3 --resplit --split-bn --jsd``. Each
training image yields ``S`` views: a clean one (random crop and flip only) and ``S - 1`` augmented ones
(the same crop, then RandAugment / AugMix and colour jitter, then random erasing). A micro-batch of B images
becomes ``S * B`` inputs in split-major order (rows ``s * B .. (s + 1) * B`` are view ``s`` of every
image), with the targets repeated, which is the layout timm's loader builds and what its
``JsdCrossEntropy`` (cross-entropy on the clean view plus the Jensen-Shannon divergence between the views)
and ``SplitBatchNorm2d`` (the clean view's BatchNorm statistics apart from the augmented views') expect.
``resplit`` keeps random erasing off the clean view, as timm's prefetcher does.
"""

from __future__ import annotations

import torch
from timm.data import create_transform


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


def split_major(images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, S, C, H, W)`` views and ``(B,)`` targets -> ``(S * B, C, H, W)`` and ``(S * B,)``, view-major."""
    num_splits = images.shape[1]
    images = images.transpose(0, 1).flatten(0, 1)  # (S * B, C, H, W)
    return images, targets.repeat(num_splits)  # (S * B,)


def check_aug_splits(aug_splits: int, jsd: bool, split_bn: bool, mixup: bool) -> None:
    """The combinations timm accepts, as clear errors."""
    if aug_splits == 1 or aug_splits < 0:
        raise ValueError(f"data.aug_splits={aug_splits}: use 0 (off) or at least 2 (a clean view + augmented ones)")
    if (jsd or split_bn) and aug_splits < 2:
        which = "data.jsd" if jsd else "model.split_bn"
        raise ValueError(f"{which} needs data.aug_splits >= 2 (timm: --aug-splits with --jsd / --split-bn)")
    if jsd and mixup:
        raise ValueError("data.jsd cannot be combined with Mixup/CutMix: the JSD loss takes hard labels")


def drop_aux_bn(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A split-BN model's weights without the augmented views' BatchNorms: a plain model loads them.

    timm's ``clean_checkpoint.py --clean-aux-bn`` does the same to the official ResNet-50 checkpoints.
    """
    return {name: tensor for name, tensor in state.items() if ".aux_bn." not in name}
