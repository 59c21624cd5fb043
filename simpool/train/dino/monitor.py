"""The k-NN monitor of DINO training: weighted k-NN top-1 of the teacher backbone's pooled features.

Memory bank: the ``monitor.train_split`` folder; queries: the ``monitor.val_split`` folder, both under
``data.root``, seen through DINO's evaluation transform (resize to ``global_size * 8 / 7``, centre crop
``global_size``). The classifier is ``simpool.evaluate.knn.knn_classify`` (DINO's ``eval_knn.py``).

It runs on every process: each embeds its shard of a bounded subset (``monitor.max_images`` per split,
spread evenly over the classes), the shards are gathered, and every process classifies on its device.
No process waits at a barrier while another embeds a whole training set (NCCL's timeout would kill it).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from ...data.datasets import collate_skip, create_dataset
from ...evaluate.features import eval_transform, extract_features
from ...evaluate.knn import knn_classify
from ..distributed import DistInfo, all_gather_rows
from .config import DinoConfig


def spread_over_classes(targets: list[int] | np.ndarray, max_images: int) -> list[int]:
    """Up to ``max_images`` indices: an equal share per class (evenly spaced within it), sorted.

    Classes with fewer images than their share give all theirs; the share is ``max(1, max_images // classes)``.
    ``max_images`` 0 or at least ``len(targets)``: every index.
    """
    targets = np.asarray(targets)
    if not max_images or max_images >= len(targets):
        return list(range(len(targets)))
    classes = np.unique(targets)
    share = max(1, max_images // len(classes))
    chosen = []
    for label in classes:
        members = np.flatnonzero(targets == label)
        take = min(share, len(members))
        chosen.extend(members[np.linspace(0, len(members) - 1, take).round().astype(int)].tolist())
    return sorted(chosen)[:max_images] if len(chosen) > max_images else sorted(chosen)


def _batches(loader: DataLoader):
    """``(images, labels, skipped)`` batches of ``collate_skip`` -> ``(images, labels)``, empty ones dropped."""
    for images, labels, _ in loader:
        if len(labels):
            yield images, labels


def _features(backbone: nn.Module, config: DinoConfig, split: str, info: DistInfo):
    """This process's shard of the split's subset, embedded, then every shard gathered: ``(N, D)``, ``(N,)``."""
    data, monitor = config.data, config.monitor
    size = data.global_size
    transform = eval_transform(resize=round(size * 256 / 224), crop=size, mean=tuple(data.mean), std=tuple(data.std))
    dataset = create_dataset(data.dataset, data.root, split, transform)
    targets = getattr(dataset, "targets", None)
    if targets is None:
        targets = [0] * len(dataset)
    shard = spread_over_classes(targets, monitor.max_images)[info.rank :: info.world_size]
    loader = DataLoader(
        Subset(dataset, shard), batch_size=monitor.batch_size, num_workers=data.num_workers, collate_fn=collate_skip
    )
    features, labels = extract_features(backbone, _batches(loader), info.device, progress=False, desc=f"knn {split}")
    return all_gather_rows(features), all_gather_rows(labels)


@torch.no_grad()
def knn_monitor(backbone: nn.Module, config: DinoConfig, info: DistInfo) -> dict[str, float]:
    """``{"knn_top1", "knn_top5"}`` (percent) of ``backbone``; every process calls it; train/eval mode restored."""
    was_training = backbone.training
    try:
        train_features, train_labels = _features(backbone, config, config.monitor.train_split, info)
        test_features, test_labels = _features(backbone, config, config.monitor.val_split, info)
    finally:
        backbone.train(was_training)
    k = min(config.monitor.k, len(train_features))
    result = knn_classify(
        train_features, train_labels, test_features, test_labels, k=k, temperature=config.monitor.temperature
    )
    return {"knn_top1": result["top1"], "knn_top5": result["top5"]}
