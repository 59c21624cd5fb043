"""Background robustness on ImageNet-9 (Xiao et al., ICLR 2021; paper Table C3): accuracy per variation, BG-gap.

A 1000-class model predicts the top-1 of all its logits, then the prediction is mapped to IN-9;
the 630 ImageNet classes outside IN-9 map to -1 and always count as wrong. A model trained on the 9
classes (the SimPool bench) is read directly. BG-gap = accuracy(mixed_same) - accuracy(mixed_rand):
how much a correlated background helps.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn
from torchvision import transforms
from tqdm import tqdm

from ..data.in9 import in9_classes, in9_dataset, in9_variations
from .features import IMAGENET_MEAN, IMAGENET_STD, data_loader

IN9_MEAN, IN9_STD = (0.4717, 0.4499, 0.3837), (0.2600, 0.2516, 0.2575)  # the reference's --in9 statistics


def in9_predictions(logits: torch.Tensor, mapping: torch.Tensor | None = None) -> torch.Tensor:
    """IN-9 labels predicted from ``logits`` ``(B, C)``: argmax over all C, then ``mapping[argmax]`` when given.

    Raises:
        ValueError: ``mapping`` has fewer entries than ``C``.
    """
    top1 = logits.argmax(dim=1)  # (B,): over all classes first, never restricted to IN-9's
    if mapping is None:
        return top1
    if len(mapping) < logits.shape[1]:
        raise ValueError(f"mapping has {len(mapping)} entries for {logits.shape[1]} logits")
    return mapping.to(top1.device)[top1]  # (B,), -1 outside IN-9


def in9_accuracy(logits: torch.Tensor, labels: torch.Tensor, mapping: torch.Tensor | None = None) -> float:
    """Percent of images whose (mapped) top-1 equals the IN-9 label; -1 predictions are wrong."""
    return 100.0 * (in9_predictions(logits, mapping) == labels.to(logits.device)).float().mean().item()


def bg_gap(accuracies: dict[str, float]) -> float:
    """BG-gap = accuracy(mixed_same) - accuracy(mixed_rand), in points.

    Raises:
        ValueError: either variation is missing.
    """
    missing = [v for v in ("mixed_same", "mixed_rand") if v not in accuracies]
    if missing:
        raise ValueError(f"BG-gap needs accuracies of mixed_same and mixed_rand; missing {missing}")
    return accuracies["mixed_same"] - accuracies["mixed_rand"]


@torch.no_grad()
def variation_logits(model, batches, mean, std, progress: bool = True, desc: str = "") -> tuple[torch.Tensor, ...]:
    """Logits of images in [0, 1]: clamped, normalised with ``mean``/``std``, then the model (the reference's
    ``NormalizedModel``). Returns ``(logits (N, C), labels (N,))`` on CPU."""
    device = next(model.parameters()).device
    mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(std, device=device).view(1, 3, 1, 1)
    logits, labels = [], []
    for images, targets in tqdm(batches, desc=desc, disable=not progress, unit="batch"):
        images = (images.to(device).clamp(0, 1) - mean) / std  # (B, 3, H, W)
        logits.append(model(images).float().cpu())  # (B, C)
        labels.append(targets)
    return torch.cat(logits), torch.cat(labels)


def evaluate_robustness(
    model: nn.Module,
    data: str | os.PathLike,
    variations: Sequence[str] | None = None,
    mapping: torch.Tensor | None = None,
    img_size: int | None = None,
    in9_stats: bool = False,
    batch_size: int = 64,
    workers: int = 0,
    progress: bool = True,
) -> dict:
    """Accuracy of ``model`` on each IN-9 variation under ``data`` (``<variation>/val/<class>/``), and the BG-gap.

    Args:
        variations: default: every variation present.
        mapping: from the model's classes to IN-9's (:func:`~simpool.data.in9.load_in9_mapping`); None: the
            model's outputs are the classes themselves.
        img_size: resize images to ``img_size x img_size``; None: as stored (IN-9 is 224x224).
        in9_stats: normalise with IN-9's statistics instead of ImageNet's.

    Returns:
        ``{"accuracy": {variation: %}}``, with ``"bg_gap"`` when mixed_same and mixed_rand were evaluated.

    Raises:
        ValueError: without ``mapping``, the model has fewer outputs than the dataset has classes.
    """
    device = next(model.parameters()).device
    steps = ([transforms.Resize((img_size, img_size))] if img_size else []) + [transforms.ToTensor()]
    mean, std = (IN9_MEAN, IN9_STD) if in9_stats else (IMAGENET_MEAN, IMAGENET_STD)
    accuracies = {}
    variations = list(variations or in9_variations(data))
    classes = in9_classes(data, variations)  # one numbering, even where a variation lacks a class
    for variation in variations:
        dataset = in9_dataset(data, variation, transforms.Compose(steps), classes)
        batches = data_loader(dataset, batch_size, workers, device)
        logits, labels = variation_logits(model, batches, mean, std, progress, variation)
        if mapping is None and max(dataset.class_to_idx.values()) >= logits.shape[1]:
            raise ValueError(
                f"{logits.shape[1]} logits for labels up to {max(dataset.class_to_idx.values())}: "
                "pass --mapping for a 1000-class model"
            )
        accuracies[variation] = in9_accuracy(logits, labels, mapping)
    result = {"accuracy": accuracies}
    if {"mixed_same", "mixed_rand"} <= set(accuracies):
        result["bg_gap"] = bg_gap(accuracies)
    return result
