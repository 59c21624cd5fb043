"""Linear semantic segmentation on frozen patch features (iBOT's ADE20K protocol, Zhou et al. 2022; paper Table C4).

The backbone is frozen; the patch features of chosen blocks (each through the final norm) are resized
to the first one's grid and concatenated, and a 1x1 convolution (a per-patch linear classifier) maps
them to class logits, upsampled bilinearly to the label size. Metrics follow mmsegmentation v0.12:
intersections and unions are summed over the whole set, then ``IoU_c = I_c / U_c``,
``Acc_c = I_c / L_c``, ``mIoU`` and ``mAcc`` are nan-means over classes, ``aAcc = sum I / sum L``.

The metrics, the frozen features, the head and its prediction live here; the head's training and the whole
protocol on ADE20K (:func:`simpool.train.probe.segmentation.segmentation_probe`) live in ``simpool.train``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn

from .features import IMAGENET_MEAN, IMAGENET_STD

IGNORE_INDEX = 255


def reduce_zero_label(label: torch.Tensor) -> torch.Tensor:
    """ADE20K's ``reduce_zero_label``: 0 ("other") becomes ignored (255), every class k becomes k - 1."""
    label = label.long().clone()
    label[label == 0] = IGNORE_INDEX
    label = label - 1
    label[label == IGNORE_INDEX - 1] = IGNORE_INDEX
    return label


def intersect_and_union(
    prediction: torch.Tensor, label: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Per-class areas of one image: ``(4, num_classes)`` = intersection, union, prediction, label.

    Pixels whose label is ``ignore_index`` are dropped from both maps; ``union = pred + label - intersection``.
    """
    if prediction.shape != label.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and label {tuple(label.shape)} differ in shape")
    keep = label != ignore_index
    prediction, label = prediction[keep].long(), label[keep].long()
    hist = lambda x: torch.bincount(x[(x >= 0) & (x < num_classes)], minlength=num_classes)[:num_classes].double()
    intersect = hist(prediction[prediction == label])
    area_prediction, area_label = hist(prediction), hist(label)
    return torch.stack([intersect, area_prediction + area_label - intersect, area_prediction, area_label])


def segmentation_metrics(areas: torch.Tensor) -> dict:
    """aAcc, mIoU, mAcc (percent) and per-class IoU and Acc from areas summed over a dataset ``(4, classes)``.

    A class absent from both prediction and labels has IoU NaN; absent from the labels, Acc NaN; NaNs
    are left out of the means (``nanmean``), as mmsegmentation does.
    """
    intersect, union, _, label = areas.double()
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = (intersect / union).numpy()
        acc = (intersect / label).numpy()
    nanmean = lambda x: float(np.nanmean(x)) * 100.0 if np.isfinite(x).any() else math.nan
    return {
        "aAcc": 100.0 * float(intersect.sum() / label.sum()) if label.sum() > 0 else math.nan,
        "mIoU": nanmean(iou),
        "mAcc": nanmean(acc),
        "IoU": (iou * 100.0).tolist(),
        "Acc": (acc * 100.0).tolist(),
    }


def evaluate_segmentation(
    predictions, labels, num_classes: int, ignore_index: int = IGNORE_INDEX, reduce_zero: bool = False
) -> dict:
    """:func:`segmentation_metrics` of pairs of ``(H, W)`` prediction and label maps, areas summed over all pairs."""
    total = torch.zeros(4, num_classes, dtype=torch.float64)
    for prediction, label in zip(predictions, labels, strict=True):
        label = torch.as_tensor(np.asarray(label))
        label = reduce_zero_label(label) if reduce_zero else label
        total += intersect_and_union(torch.as_tensor(np.asarray(prediction)), label, num_classes, ignore_index)
    return segmentation_metrics(total)


class FrozenPatchFeatures(nn.Module):
    """Patch features ``(B, sum C_i, h, w)`` of chosen blocks of a frozen timm model (through its final norm).

    Uses timm's ``forward_intermediates``; maps are resized bilinearly to the first one's grid and
    concatenated (mmseg's ``resize_concat``).
    """

    def __init__(self, model: nn.Module, indices: Sequence[int]):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.indices = list(indices)

    def train(self, mode: bool = True):  # the backbone stays in eval mode
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.model.forward_intermediates(images, indices=self.indices, norm=True, intermediates_only=True)
        size = maps[0].shape[-2:]
        maps = [
            m if m.shape[-2:] == size else F.interpolate(m, size, mode="bilinear", align_corners=False) for m in maps
        ]
        return torch.cat(maps, dim=1)  # (B, sum C_i, h, w)


class LinearSegmentationHead(nn.Module):
    """A 1x1 convolution from patch features to class logits, upsampled bilinearly to the image size."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.conv_seg = nn.Conv2d(in_channels, num_classes, kernel_size=1)
        nn.init.normal_(self.conv_seg.weight, std=0.01)
        nn.init.zeros_(self.conv_seg.bias)

    def forward(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        logits = self.conv_seg(features)  # (B, classes, h, w)
        return F.interpolate(logits, size, mode="bilinear", align_corners=False)  # (B, classes, H, W)


def normalize_image(image: Image.Image) -> torch.Tensor:
    """An RGB image as a tensor ``(3, H, W)`` normalised with ImageNet's mean and std."""
    return TF.normalize(TF.to_tensor(image), IMAGENET_MEAN, IMAGENET_STD)  # (3, H, W)


@torch.no_grad()
def predict(
    backbone: FrozenPatchFeatures, head: LinearSegmentationHead, image: Image.Image, short_side: int, multiple: int
):
    """Class map ``(H, W)``: the image resized to ``short_side`` (sides rounded to ``multiple``), logits back to H x W.

    One whole-image pass; iBOT's test uses sliding 512 windows with stride 341 on a 512 short side.
    """
    head.eval()
    scale = short_side / min(image.size)
    size = (
        max(multiple, round(image.width * scale / multiple) * multiple),
        max(multiple, round(image.height * scale / multiple) * multiple),
    )
    x = normalize_image(image.resize(size, Image.BILINEAR))[None].to(next(head.parameters()).device)  # (1, 3, h, w)
    return head(backbone(x), (image.height, image.width))[0].argmax(0).cpu()  # (H, W)
