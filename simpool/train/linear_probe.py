"""Training a linear probe on frozen features (DINO's ``eval_linear.py``; paper Tables 3, 4).

A grid of :class:`simpool.evaluate.linear.LinearHeads`, one per base learning rate, trained in one pass
(dinov2's grid): SGD with momentum 0.9 and no weight decay, ``lr = base_lr * batch_size / 256``, a cosine
schedule to 0 stepped per epoch, cross-entropy; the reported number is the best validation top-1 over epochs.
:func:`linear_probe` runs the whole protocol on an ImageFolder dataset.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.folders import image_folder
from ..evaluate.features import data_loader, eval_transform, extract_features, pre_logits
from ..evaluate.linear import LinearHeads, top1_per_head, train_transform
from .engine import Engine


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


def linear_probe(
    model: nn.Module,
    data: str | os.PathLike,
    train_split: str = "train",
    val_split: str = "val",
    lrs: Sequence[float] = (0.001,),
    epochs: int = 100,
    cached: bool = False,
    resize: int = 256,
    img_size: int = 224,
    batch_size: int = 64,
    workers: int = 0,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """The linear probe of ``model``'s frozen features on ``<data>/<train_split>``, validated on ``<val_split>``.

    Training images pass DINO's augmentation (:func:`~simpool.evaluate.linear.train_transform`) through the
    frozen model every epoch; with ``cached`` the training features are extracted once without augmentation
    (:func:`linear_probe_cached`). The model runs on the device of its parameters. Returns
    :func:`fit_linear_heads`'s result.
    """
    device = next(model.parameters()).device
    train_tf = eval_transform(resize, img_size) if cached else train_transform(img_size)
    train = image_folder(os.path.join(data, train_split), train_tf)
    val = image_folder(os.path.join(data, val_split), eval_transform(resize, img_size), train.classes)
    loader = lambda dataset, **kw: data_loader(dataset, batch_size, workers, device, **kw)  # noqa: E731
    val_features, val_labels = extract_features(model, loader(val), device=device, progress=progress, desc="val")
    if cached:
        train_features, train_labels = extract_features(
            model, loader(train), device=device, progress=progress, desc="train"
        )
        return linear_probe_cached(
            train_features, train_labels, val_features, val_labels, lrs, epochs, batch_size, len(val.classes), seed,
            progress,
        )  # fmt: skip
    batches = loader(train, shuffle=True, drop_last=len(train) > batch_size)

    @torch.no_grad()
    def frozen(batch):
        images, labels = batch
        return pre_logits(model, images.to(device)), labels

    heads = LinearHeads(val_features.shape[1], len(val.classes), len(lrs)).to(device)
    return fit_linear_heads(
        heads,
        lambda epoch: (frozen(b) for b in batches if len(b[0])),
        val_features,
        val_labels,
        lrs,
        epochs,
        batch_size,
        progress,
    )
