"""Linear probe on frozen features (DINO, Caron et al. 2021, ``eval_linear.py``; paper Tables 3, 4): the heads.

A linear classifier ``W f(x) + b`` on the frozen pooled feature, ``W ~ N(0, 0.01^2)``, ``b = 0``;
SGD with momentum 0.9 and no weight decay; ``lr = base_lr * batch_size / 256``; a cosine schedule
to 0 stepped per epoch; cross-entropy; the reported number is the best validation top-1 over
epochs, as DINO reports it. Several heads, one per base learning rate, train in the same pass over
the features (dinov2's grid of linear heads): each head's gradient depends only on itself, so the
grid equals separate runs at a fraction of the cost.

The heads and their accuracy live here; their training (:func:`simpool.train.linear_probe.fit_linear_heads`)
and the runner over an ImageFolder dataset live in :mod:`simpool.train.linear_probe`.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision import transforms

from .features import IMAGENET_MEAN, IMAGENET_STD


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


__all__ = ["LinearHeads", "top1_per_head", "train_transform"]
