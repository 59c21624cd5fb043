"""The linear segmentation probe on frozen patch features (iBOT's ADE20K protocol; paper Table C4).

:class:`SegmentationProbeRecipe` trains :class:`simpool.evaluate.segmentation.LinearSegmentationHead` on random
crops: AdamW (weight decay 0.05), a linear warm-up then poly (power 1) decay to 0 per update, cross-entropy
ignoring 255. :func:`segmentation_probe` runs the whole protocol on an ADE20K folder and returns
:func:`simpool.evaluate.segmentation.evaluate_segmentation`'s metrics.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm import tqdm

from ...data.ade20k import ade20k_pairs
from ...data.folders import load_rgb
from ...evaluate.segmentation import (
    IGNORE_INDEX,
    FrozenPatchFeatures,
    LinearSegmentationHead,
    evaluate_segmentation,
    normalize_image,
    predict,
    reduce_zero_label,
)
from ..distributed import DistInfo
from ..engine import single_process
from ..recipe import Loop, Parts, Recipe
from ..schedule import Schedule


def train_sample(image: Image.Image, label: Image.Image, crop: int, rng: np.random.Generator):
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


class SegmentationProbeRecipe(Recipe):
    """Train ``head`` on ``backbone``'s features of random crops of ``pairs`` (image path, label path), for
    ``iterations`` updates of ``batch_size`` crops of side ``crop``; ``reduce_zero``: label 0 is "other"."""

    name = "segmentation"

    def __init__(
        self,
        backbone: FrozenPatchFeatures,
        head: LinearSegmentationHead,
        pairs: Sequence[tuple],
        iterations: int,
        batch_size: int,
        crop: int,
        lr: float,
        reduce_zero: bool = True,
        warmup: int = 0,
        seed: int = 0,
        progress: bool = True,
    ):
        self.backbone, self.head, self.pairs = backbone, head, pairs
        self.iterations, self.batch_size, self.crop, self.lr = iterations, batch_size, crop, lr
        self.reduce_zero, self.warmup = reduce_zero, warmup
        self.rng = np.random.default_rng(seed)
        self.device = next(head.parameters()).device
        self.loop = Loop(progress=progress)

    def poly(self, update: int) -> float:
        """The learning-rate factor at ``update``: linear warm-up times ``1 - update / iterations``."""
        warmup = min(1.0, (update + 1) / self.warmup) if self.warmup else 1.0
        return (1 - update / self.iterations) * warmup

    def build(self, info: DistInfo) -> Parts:
        optimizer = torch.optim.AdamW(self.head.parameters(), lr=self.lr, betas=(0.9, 0.999), weight_decay=0.05)
        schedule = Schedule(torch.optim.lr_scheduler.LambdaLR(optimizer, self.poly), on="update")
        return Parts(self.head, optimizer, epochs=1, updates_per_epoch=self.iterations, schedule=schedule)

    def crops(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch: ``(images (B, 3, crop, crop), labels (B, crop, crop))`` of randomly drawn pairs."""
        drawn = (self.pairs[j] for j in self.rng.integers(0, len(self.pairs), self.batch_size))
        samples = [train_sample(load_rgb(image), Image.open(label), self.crop, self.rng) for image, label in drawn]
        images = torch.stack([normalize_image(image) for image, _ in samples])  # (B, 3, crop, crop)
        labels = torch.stack([torch.from_numpy(np.asarray(label, dtype=np.int64)) for _, label in samples])
        return images, reduce_zero_label(labels) if self.reduce_zero else labels

    def batches(self, epoch: int, start_update: int):
        for _ in range(start_update, self.iterations):
            yield *self.crops(), 0

    def step(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, weight: float):
        images, labels = images.to(self.device), labels.to(self.device)
        logits = model(self.backbone(images), labels.shape[-2:])  # (B, classes, crop, crop)
        return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX), len(labels)


def segmentation_probe(
    model: nn.Module,
    data: str | os.PathLike,
    blocks: Sequence[int] = (3, 5, 7, 11),
    num_classes: int = 150,
    iterations: int = 160000,
    warmup: int = 1500,
    lr: float = 3e-5,
    img_size: int = 512,
    batch_size: int = 16,
    reduce_zero: bool = True,
    train_split: str = "training",
    val_split: str = "validation",
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Train a linear head on ``model``'s frozen patch features of ``blocks`` on ``<data>``'s ``train_split``,
    then score it on ``val_split``: :func:`~simpool.evaluate.segmentation.evaluate_segmentation`'s metrics.

    ``img_size`` is the training crop and the test short side; the model runs on the device of its parameters.
    """
    device = next(model.parameters()).device
    backbone = FrozenPatchFeatures(model, blocks)
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", (32, 32))[0]
    features = backbone(torch.zeros(1, 3, img_size, img_size, device=device))  # (1, C, h, w)
    head = LinearSegmentationHead(features.shape[1], num_classes).to(device)
    recipe = SegmentationProbeRecipe(
        backbone,
        head,
        ade20k_pairs(data, train_split),
        iterations,
        batch_size,
        img_size,
        lr,
        reduce_zero=reduce_zero,
        warmup=warmup,
        seed=seed,
        progress=progress,
    )
    recipe.run(single_process(device))
    pairs = ade20k_pairs(data, val_split)
    images = tqdm([image_path for image_path, _ in pairs], desc="val", disable=not progress)
    predictions = (predict(backbone, head, load_rgb(image_path), img_size, patch) for image_path in images)
    labels = (np.asarray(Image.open(label_path), dtype=np.int64) for _, label_path in pairs)
    return evaluate_segmentation(predictions, labels, num_classes, reduce_zero=reduce_zero)


__all__ = ["SegmentationProbeRecipe", "segmentation_probe", "train_sample"]
