"""Augmentation splits: timm's ``--aug-splits``, ``--resplit``, ``--jsd`` and ``--split-bn`` (AugMix training).

The paper's official ResNet-50 command trains with ``--aug-splits 3 --resplit --split-bn --jsd``. Each
training image yields ``S`` views: a clean one (random crop and flip only) and ``S - 1`` augmented ones
(the same crop, then RandAugment / AugMix and colour jitter, then random erasing). A micro-batch of B images
becomes ``S * B`` inputs in split-major order (rows ``s * B .. (s + 1) * B`` are view ``s`` of every
image), with the targets repeated, which is the layout timm's loader builds and what its
``JsdCrossEntropy`` (cross-entropy on the clean view plus the Jensen-Shannon divergence between the views)
and ``SplitBatchNorm2d`` (the clean view's BatchNorm statistics apart from the augmented views') expect.
The views come from the training transform (``simpool.data.transforms.split_transform``, ``resplit``
keeping random erasing off the clean view); this module holds the training side.
"""

from __future__ import annotations

import torch


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
