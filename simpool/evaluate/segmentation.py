"""Linear semantic segmentation on frozen patch features (iBOT's ADE20K protocol, Zhou et al. 2022; paper Table C4).

The backbone is frozen; the patch features of chosen blocks (each through the final norm) are resized
to the first one's grid and concatenated, and a 1x1 convolution (a per-patch linear classifier) maps
them to class logits, upsampled bilinearly to the label size. Metrics follow mmsegmentation v0.12:
intersections and unions are summed over the whole set, then ``IoU_c = I_c / U_c``,
``Acc_c = I_c / L_c``, ``mIoU`` and ``mAcc`` are nan-means over classes, ``aAcc = sum I / sum L``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn
from tqdm import tqdm

from ..data.folders import load_rgb
from ..train.engine import Engine
from ..utils import write_json
from .features import IMAGENET_MEAN, IMAGENET_STD, add_model_arguments, build_model, format_table

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


# ----------------------------------------------------------------------------------------------------------------------
# ADE20K layout and the training loop
# ----------------------------------------------------------------------------------------------------------------------


def ade20k_pairs(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    """``(image, annotation)`` paths of ``<root>/images/<split>/*.jpg`` and ``<root>/annotations/<split>/*.png``."""
    images = sorted((Path(root) / "images" / split).glob("*.jpg"))
    if not images:
        raise FileNotFoundError(f"no images in {Path(root) / 'images' / split}")
    pairs = [(p, Path(root) / "annotations" / split / f"{p.stem}.png") for p in images]
    missing = [str(a) for _, a in pairs if not a.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} annotations missing, e.g. {missing[0]}")
    return pairs


def _normalise(image: Image.Image) -> torch.Tensor:
    return TF.normalize(TF.to_tensor(image), IMAGENET_MEAN, IMAGENET_STD)  # (3, H, W)


def _train_sample(image: Image.Image, label: Image.Image, crop: int, rng: np.random.Generator):
    """Random scale (0.5-2 of a short side ``crop``), random crop ``crop`` (padding: 0 / ignore), flip."""
    scale = crop * rng.uniform(0.5, 2.0) / min(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    image, label = image.resize(size, Image.BILINEAR), label.resize(size, Image.NEAREST)
    canvas_image = Image.new("RGB", (max(crop, size[0]), max(crop, size[1])))
    canvas_label = Image.new("L", canvas_image.size, IGNORE_INDEX)
    canvas_image.paste(image)
    canvas_label.paste(label)
    x0, y0 = rng.integers(0, canvas_image.width - crop + 1), rng.integers(0, canvas_image.height - crop + 1)
    box = (int(x0), int(y0), int(x0) + crop, int(y0) + crop)
    image, label = canvas_image.crop(box), canvas_label.crop(box)
    if rng.random() < 0.5:
        image, label = image.transpose(Image.FLIP_LEFT_RIGHT), label.transpose(Image.FLIP_LEFT_RIGHT)
    return image, label


def train_linear_segmentation(
    backbone: FrozenPatchFeatures, head: LinearSegmentationHead, pairs, iterations: int, batch_size: int, crop: int,
    lr: float, reduce_zero: bool = True, warmup: int = 0, seed: int = 0, progress: bool = True,
) -> None:  # fmt: skip
    """AdamW (weight decay 0.05), linear warm-up then poly (power 1) decay to 0, cross-entropy ignoring 255."""
    device = next(head.parameters()).device
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=0.05)
    poly = lambda step: (1 - step / iterations) * (min(1.0, (step + 1) / warmup) if warmup else 1.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, poly)

    def batches(epoch: int, start_update: int):
        for _ in range(start_update, iterations):
            samples = [
                _train_sample(load_rgb(i), Image.open(a), crop, rng)
                for i, a in (pairs[j] for j in rng.integers(0, len(pairs), batch_size))
            ]
            images = torch.stack([_normalise(image) for image, _ in samples])  # (B, 3, crop, crop)
            labels = torch.stack([torch.from_numpy(np.asarray(label, dtype=np.int64)) for _, label in samples])
            yield images, reduce_zero_label(labels) if reduce_zero else labels, 0

    def step(head, images, labels, weight):
        images, labels = images.to(device), labels.to(device)
        logits = head(backbone(images), labels.shape[-2:])  # (B, classes, crop, crop)
        return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX), len(labels)

    engine = Engine(head, optimizer, step, scheduler=schedule, desc="segmentation", progress=progress)
    engine.fit(batches, epochs=1, updates_per_epoch=iterations)


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
    x = _normalise(image.resize(size, Image.BILINEAR))[None].to(next(head.parameters()).device)  # (1, 3, h, w)
    return head(backbone(x), (image.height, image.width))[0].argmax(0).cpu()  # (H, W)


# ----------------------------------------------------------------------------------------------------------------------
# simpool eval segmentation
# ----------------------------------------------------------------------------------------------------------------------

EXAMPLE = """example:
  simpool eval segmentation --data-root /data/ade/ADEChallengeData2016 --model vit_small_patch16_224 \\
      --model-kwargs dynamic_img_size=true --checkpoint dino.safetensors --blocks 3 5 7 11 --iterations 160000 \\
      --lr 3e-5 --batch-size 16 --output ade20k.json
The data root holds images/{training,validation}/*.jpg and annotations/{training,validation}/*.png (0 = other)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", required=True, help="ADEChallengeData2016 layout")
    parser.add_argument("--num-seg-classes", type=int, default=150)
    parser.add_argument("--blocks", type=int, nargs="+", default=[3, 5, 7, 11], help="0-based block indices")
    parser.add_argument("--iterations", type=int, default=160000)
    parser.add_argument("--warmup", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=3e-5, help="AdamW learning rate (iBOT ViT-S: 3e-5)")
    parser.add_argument("--crop", type=int, default=512, help="training crop and test short side")
    parser.add_argument("--no-reduce-zero-label", action="store_true", help="label 0 is a class, not 'other'")
    parser.add_argument("--train-split", default="training")
    parser.add_argument("--val-split", default="validation")
    parser.add_argument("--seed", type=int, default=0)
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    model = build_model(args)
    device = next(model.parameters()).device
    backbone = FrozenPatchFeatures(model, args.blocks)
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", (32, 32))[0]
    probe = backbone(torch.zeros(1, 3, args.crop, args.crop, device=device))  # (1, C, h, w)
    head = LinearSegmentationHead(probe.shape[1], args.num_seg_classes).to(device)
    reduce_zero = not args.no_reduce_zero_label
    progress = not args.no_progress
    train_pairs = ade20k_pairs(args.data_root, args.train_split)
    train_linear_segmentation(
        backbone, head, train_pairs, args.iterations, args.batch_size, args.crop, args.lr, reduce_zero,
        args.warmup, args.seed, progress,
    )  # fmt: skip
    pairs = ade20k_pairs(args.data_root, args.val_split)
    images = tqdm([image_path for image_path, _ in pairs], desc="val", disable=not progress)
    predictions = (predict(backbone, head, load_rgb(image_path), args.crop, patch) for image_path in images)
    labels = (np.asarray(Image.open(label_path), dtype=np.int64) for _, label_path in pairs)
    metrics = evaluate_segmentation(predictions, labels, args.num_seg_classes, reduce_zero=reduce_zero)
    print(format_table([(metrics["mIoU"], metrics["mAcc"], metrics["aAcc"])], ("mIoU %", "mAcc %", "aAcc %")))
    if args.output:
        info = {"protocol": "segmentation", "model": args.model, "pool": args.pool, "blocks": args.blocks}
        write_json(args.output, {**info, "iterations": args.iterations, **metrics})
    return 0
