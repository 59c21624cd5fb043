"""The k-NN monitor of DINO training: weighted k-NN top-1 of the teacher backbone's pooled features.

Memory bank: the ``monitor.train_split`` folder; queries: the ``monitor.val_split`` folder, both under
``data.root``, seen through DINO's evaluation transform (resize to ``global_size * 8 / 7``, centre crop
``global_size``). The classifier is ``simpool.evaluate.knn.knn_classify`` (DINO's ``eval_knn.py``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from ..evaluate.features import eval_transform, extract_features
from ..evaluate.knn import knn_classify
from .data import collate_skip, create_dataset
from .dino_config import DinoConfig


def _batches(loader: DataLoader):
    """``(images, labels, skipped)`` batches of ``collate_skip`` -> ``(images, labels)``, empty ones dropped."""
    for images, labels, _ in loader:
        if len(labels):
            yield images, labels


def _features(backbone: nn.Module, config: DinoConfig, split: str, device: torch.device):
    data, monitor = config.data, config.monitor
    size = data.global_size
    transform = eval_transform(resize=round(size * 256 / 224), crop=size, mean=tuple(data.mean), std=tuple(data.std))
    dataset = create_dataset(data.dataset, data.root, split, transform)
    if monitor.max_images and monitor.max_images < len(dataset):
        # evenly spaced, so that a folder sorted by class keeps every class
        dataset = Subset(dataset, np.linspace(0, len(dataset) - 1, monitor.max_images).round().astype(int).tolist())
    loader = DataLoader(dataset, batch_size=monitor.batch_size, num_workers=data.num_workers, collate_fn=collate_skip)
    return extract_features(backbone, _batches(loader), device, progress=False, desc=f"knn {split}")


@torch.no_grad()
def knn_monitor(backbone: nn.Module, config: DinoConfig, device: torch.device) -> dict[str, float]:
    """``{"knn_top1", "knn_top5"}`` (percent) of ``backbone``; its train/eval mode is restored afterwards."""
    was_training = backbone.training
    try:
        train_features, train_labels = _features(backbone, config, config.monitor.train_split, device)
        test_features, test_labels = _features(backbone, config, config.monitor.val_split, device)
    finally:
        backbone.train(was_training)
    k = min(config.monitor.k, len(train_features))
    result = knn_classify(
        train_features, train_labels, test_features, test_labels, k=k, temperature=config.monitor.temperature
    )
    return {"knn_top1": result["top1"], "knn_top5": result["top5"]}
