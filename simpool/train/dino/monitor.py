"""The k-NN monitor of DINO training: weighted k-NN top-1 of the teacher backbone's pooled features.

Memory bank: the ``monitor.train_split`` folder; queries: the ``monitor.val_split`` folder, both under
``data.root``, seen through DINO's evaluation transform (resize to ``global_size * 8 / 7``, centre crop
``global_size``). The classifier is ``simpool.evaluate.knn.knn_classify`` (DINO's ``eval_knn.py``).

It runs on every process: each embeds its shard of a bounded subset (``monitor.max_images`` per split,
spread evenly over the classes), the shards are gathered, and every process classifies on its device.
No process waits at a barrier while another embeds a whole training set (NCCL's timeout would kill it).
The folders are scanned and the subset chosen once per run (:class:`KnnMonitor`), not at every call. A
process whose shard is empty (fewer images than processes) gathers zero rows; one whose shard fails (an
unreadable folder or images) makes every process raise together (:func:`~simpool.train.distributed.run_together`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from ...data.datasets import collate_skip, create_dataset
from ...evaluate.features import eval_transform, extract_features, pre_logits
from ...evaluate.knn import knn_classify
from ..distributed import DistInfo, all_gather_rows, run_together
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


def pooled_width(backbone: nn.Module) -> int | None:
    """The width of ``backbone``'s pooled features as timm states it: ``head_hidden_size`` (the pre-logits width),
    else ``num_features``, else ``embed_dim``; None when the model has none of them."""
    for name in ("head_hidden_size", "num_features", "embed_dim"):
        width = getattr(backbone, name, None)
        if isinstance(width, int) and width > 0:
            return width
    return None


def _batches(loader: DataLoader):
    """``(images, labels, skipped)`` batches of ``collate_skip`` -> ``(images, labels)``, empty ones dropped."""
    for images, labels, _ in loader:
        if len(labels):
            yield images, labels


class KnnMonitor:
    """The k-NN monitor of one run: the two splits' subsets chosen once (at the first call), embedded at each.

    Args:
        config: the DINO config (``data`` for the folders and the transform, ``monitor`` for the subset and k).
        info: this process's rank and device.
    """

    def __init__(self, config: DinoConfig, info: DistInfo):
        self.config, self.info = config, info
        self.shards: dict[str, Subset] | None = None  # split -> this process's share of its subset

    def _shard(self, split: str) -> Subset:
        """This process's share of the split's class-balanced subset (the folder scanned here, once)."""
        data, size = self.config.data, self.config.data.global_size
        transform = eval_transform(
            resize=round(size * 256 / 224), crop=size, mean=tuple(data.mean), std=tuple(data.std)
        )
        dataset = create_dataset(data.dataset, data.root, split, transform)
        targets = getattr(dataset, "targets", None)
        if targets is None:
            targets = [0] * len(dataset)
        subset = spread_over_classes(targets, self.config.monitor.max_images)
        return Subset(dataset, subset[self.info.rank :: self.info.world_size])

    def _embed(self, backbone: nn.Module, shard: Subset) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's shard embedded: ``(n, D)`` features, ``(n,)`` labels (``n`` may be 0)."""
        device, size = self.info.device, self.config.data.global_size
        if len(shard) == 0:  # zero rows of the right width, so that the gather has this process's part
            width = pooled_width(backbone)
            if width is None:  # a model that does not say: one forward pass tells
                backbone.eval()
                width = pre_logits(backbone, torch.zeros(1, 3, size, size, device=device)).shape[1]
            return torch.zeros(0, width, device=device), torch.zeros(0, dtype=torch.long, device=device)
        loader = DataLoader(
            shard,
            batch_size=self.config.monitor.batch_size,
            num_workers=self.config.data.num_workers,
            collate_fn=collate_skip,
        )
        return extract_features(backbone, _batches(loader), device, progress=False, desc="knn monitor")

    @torch.no_grad()
    def __call__(self, backbone: nn.Module) -> dict[str, float]:
        """``{"knn_top1", "knn_top5"}`` (percent) of ``backbone``; every process calls it; train/eval mode restored."""
        monitor, was_training = self.config.monitor, backbone.training
        if self.shards is None:
            splits = (monitor.train_split, monitor.val_split)
            self.shards = run_together(lambda: {split: self._shard(split) for split in splits}, self.info)
        try:
            embedded = run_together(lambda: [self._embed(backbone, shard) for shard in self.shards.values()], self.info)
        finally:
            backbone.train(was_training)
        (train_features, train_labels), (test_features, test_labels) = [
            (all_gather_rows(features), all_gather_rows(labels)) for features, labels in embedded
        ]
        k = min(monitor.k, len(train_features))
        result = knn_classify(
            train_features, train_labels, test_features, test_labels, k=k, temperature=monitor.temperature
        )
        return {"knn_top1": result["top1"], "knn_top5": result["top5"]}
