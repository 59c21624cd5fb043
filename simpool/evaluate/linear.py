"""Linear probe on frozen features (DINO, Caron et al. 2021, ``eval_linear.py``; paper Tables 3, 4).

A linear classifier ``W f(x) + b`` on the frozen pooled feature, ``W ~ N(0, 0.01^2)``, ``b = 0``;
SGD with momentum 0.9 and no weight decay; ``lr = base_lr * batch_size / 256``; a cosine schedule
to 0 stepped per epoch; cross-entropy; the reported number is the best validation top-1 over
epochs, as DINO reports it. Several heads, one per base learning rate, train in the same pass over
the features (dinov2's grid of linear heads): each head's gradient depends only on itself, so the
grid equals separate runs at a fraction of the cost.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms

from ..data.folders import image_folder
from ..train.engine import Engine
from ..utils import write_json
from .features import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    add_model_arguments,
    build_model,
    eval_transform,
    extract_features,
    format_table,
    loader,
    pre_logits,
)


class LinearHeads(nn.Module):
    """``count`` linear classifiers over the same features; DINO's initialisation ``N(0, 0.01^2)``, bias 0."""

    def __init__(self, in_features: int, num_classes: int, count: int = 1):
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(in_features, num_classes) for _ in range(count))
        for head in self.heads:
            nn.init.normal_(head.weight, mean=0.0, std=0.01)
            nn.init.zeros_(head.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(features.flatten(1)) for head in self.heads])  # (heads, B, classes)


@torch.no_grad()
def top1_per_head(heads: LinearHeads, features: torch.Tensor, labels: torch.Tensor, batch_size: int = 1024):
    """Top-1 accuracy (percent) of every head: ``(heads,)``."""
    device = next(heads.parameters()).device
    correct = torch.zeros(len(heads.heads))
    for start in range(0, len(features), batch_size):
        logits = heads(features[start : start + batch_size].to(device))  # (heads, b, classes)
        correct += (logits.argmax(-1) == labels[start : start + batch_size].to(device)).sum(1).cpu()
    return 100.0 * correct / len(features)


def fit_linear_heads(
    heads: LinearHeads,
    epoch_batches: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    val_features: torch.Tensor,
    val_labels: torch.Tensor,
    lrs: Sequence[float],
    epochs: int,
    batch_size: int,
    progress: bool = True,
) -> dict:
    """Train every head on the batches of each epoch; validate after each epoch.

    Args:
        heads: one head per entry of ``lrs``; trained in place on its own device.
        epoch_batches: ``epoch -> iterable of (features (B, D), labels (B,))``: cached features, or
            features of freshly augmented images.
        val_features, val_labels: ``(N, D)``, ``(N,)``.
        lrs: base learning rates; head i uses ``lrs[i] * batch_size / 256``.
        epochs: cosine schedule length (DINO: 100).
        batch_size: the global batch size that scales the learning rates.

    Returns:
        ``{"heads": [{"lr", "best_top1", "best_epoch", "final_top1", "top1_per_epoch"}], "best": the head of
        largest best_top1}``.
    """
    if len(lrs) != len(heads.heads):
        raise ValueError(f"{len(lrs)} learning rates for {len(heads.heads)} heads")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    device = next(heads.parameters()).device
    groups = [
        {"params": head.parameters(), "lr": lr * batch_size / 256.0} for head, lr in zip(heads.heads, lrs, strict=True)
    ]
    optimizer = torch.optim.SGD(groups, momentum=0.9, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=0.0)
    history = []

    def batches(epoch: int, start_update: int):
        for features, labels in epoch_batches(epoch):
            yield features, labels, 0

    def step(heads, features, labels, weight):
        logits = heads(features.to(device))  # (heads, B, classes)
        labels = labels.to(device)
        # the sum of the heads' losses: each head's gradient is that of its own loss
        return sum(F.cross_entropy(head_logits, labels) for head_logits in logits), len(labels)

    def end_epoch(epoch: int, row: dict) -> None:
        heads.eval()
        history.append(top1_per_head(heads, val_features, val_labels))

    engine = Engine(heads, optimizer, step, scheduler=schedule, schedule_on="epoch", desc="linear", progress=progress)
    engine.fit(batches, epochs, updates_per_epoch=None, end_epoch=end_epoch)
    table = torch.stack(history)  # (epochs, heads)
    results = []
    for i, lr in enumerate(lrs):
        best_epoch = int(table[:, i].argmax())
        results.append(
            {
                "lr": lr,
                "best_top1": float(table[best_epoch, i]),
                "best_epoch": best_epoch + 1,
                "final_top1": float(table[-1, i]),
                "top1_per_epoch": table[:, i].tolist(),
            }
        )
    return {"heads": results, "best": max(results, key=lambda r: r["best_top1"])}


def linear_probe_cached(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    val_features: torch.Tensor,
    val_labels: torch.Tensor,
    lrs: Sequence[float] = (0.001,),
    epochs: int = 100,
    batch_size: int = 256,
    num_classes: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """A grid of linear heads (one per base lr) trained in one pass over cached features, shuffled per epoch.

    No augmentation: every epoch sees the same features (faster than :func:`fit_linear_heads` on
    augmented images, usually a little less accurate). See :func:`fit_linear_heads` for the result.
    """
    if len(train_features) != len(train_labels) or len(val_features) != len(val_labels):
        raise ValueError("one label per feature row is required for train and val")
    num_classes = num_classes or int(max(train_labels.max(), val_labels.max())) + 1
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    heads = LinearHeads(train_features[0].numel(), num_classes, len(lrs)).to(train_features.device)

    def epoch_batches(epoch: int):
        order = torch.randperm(len(train_features), generator=generator)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            yield train_features[index], train_labels[index]

    return fit_linear_heads(heads, epoch_batches, val_features, val_labels, lrs, epochs, batch_size, progress)


def train_transform(crop: int = 224) -> transforms.Compose:
    """DINO's linear-probe augmentation: ``RandomResizedCrop(224)``, horizontal flip, normalise."""
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(crop),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


# ----------------------------------------------------------------------------------------------------------------------
# simpool eval linear
# ----------------------------------------------------------------------------------------------------------------------

EXAMPLE = """examples:
  simpool eval linear --data-path /data/imagenet --model vit_small_patch16_224 --checkpoint dino.safetensors \\
      --checkpoint-key teacher --batch-size 1024 --epochs 100 --output linear.json
  simpool eval linear --data-path /data/imagenet --model vit_small_patch16_224 --checkpoint dino.safetensors \\
      --cached --lrs 0.0001 0.001 0.01 0.1 --epochs 100 --output linear_grid.json
The data path holds train/ and val/ ImageFolder layouts. --cached extracts training features once without
augmentation and trains the grid of heads on them."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-path", required=True, help="folder with train/ and val/ ImageFolder layouts")
    parser.add_argument("--train-split", default="train", help="training sub-folder of --data-path")
    parser.add_argument("--val-split", default="val", help="evaluation sub-folder (the bench exports 'test')")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.001], help="base learning rates (x batch/256)")
    parser.add_argument("--cached", action="store_true", help="train on cached features, no augmentation")
    parser.add_argument("--resize", type=int, default=256)
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    model = build_model(args)
    device = next(model.parameters()).device
    progress = not args.no_progress
    train_tf = eval_transform(args.resize, args.crop) if args.cached else train_transform(args.crop)
    train = image_folder(os.path.join(args.data_path, args.train_split), train_tf)
    val = image_folder(
        os.path.join(args.data_path, args.val_split), eval_transform(args.resize, args.crop), train.classes
    )
    val_features, val_labels = extract_features(model, loader(val, args), progress=progress, desc="val")
    if args.cached:
        train_features, train_labels = extract_features(model, loader(train, args), progress=progress, desc="train")
        result = linear_probe_cached(
            train_features, train_labels, val_features, val_labels, args.lrs, args.epochs, args.batch_size,
            len(val.classes), args.seed, progress,
        )  # fmt: skip
    else:
        batches = loader(train, args, shuffle=True, drop_last=len(train) > args.batch_size)

        @torch.no_grad()
        def frozen(batch):
            images, labels = batch
            return pre_logits(model, images.to(device)), labels

        heads = LinearHeads(val_features.shape[1], len(val.classes), len(args.lrs)).to(device)
        result = fit_linear_heads(
            heads, lambda epoch: map(frozen, batches), val_features, val_labels, args.lrs, args.epochs,
            args.batch_size, progress,
        )  # fmt: skip
    rows = [(h["lr"], h["best_top1"], h["best_epoch"], h["final_top1"]) for h in result["heads"]]
    print(format_table(rows, ("base lr", "best top1 %", "best epoch", "final top1 %")))
    if args.output:
        info = {"protocol": "linear", "model": args.model, "pool": args.pool, "cached": args.cached}
        write_json(args.output, {**info, "epochs": args.epochs, "batch_size": args.batch_size, **result})
    return 0


__all__ = ["LinearHeads", "fit_linear_heads", "linear_probe_cached", "top1_per_head", "train_transform"]
