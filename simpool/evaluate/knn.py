"""Weighted k-NN classification of frozen features (DINO, Caron et al. 2021, ``eval_knn.py``).

The paper reports k-NN top-1 of DINO-pretrained ViT-S/16 with each pool (Tables 3, 4, 7).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.folders import image_folder
from .features import chunks, data_loader, eval_transform, extract_features, rows_per_chunk


def _check(train_features, train_labels, test_features, ks, temperature) -> list[int]:
    """The sorted distinct ``ks``, after refusing features, training labels, ``k`` or ``temperature`` that do not
    fit."""
    if train_features.ndim != 2 or test_features.ndim != 2 or train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"features must be (N, D) with the same D: train {tuple(train_features.shape)}, "
            f"test {tuple(test_features.shape)}"
        )
    if len(train_labels) != len(train_features):
        raise ValueError("train_labels / test_labels must have one label per feature row")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1 or ks[-1] > len(train_features):
        raise ValueError(f"k must be in [1, {len(train_features)}] (the number of training features), got {ks}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return ks


def knn_rankings(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    ks: Sequence[int],
    temperature: float,
    num_classes: int,
    memory_bytes: int = 2**29,
) -> Iterator[tuple[slice, dict[int, torch.Tensor]]]:
    """Per chunk of test rows, each ``k``'s classes ranked by DINO's weighted vote: ``(rows, {k: (b, classes)})``.

    The vote of :func:`knn_classify`; a stable descending sort ranks equal votes' lower class index first. ``ks``
    must already be checked (:func:`knn_classify_many` does).
    """
    device = train_features.device
    train_labels = train_labels.to(device).long()
    train = F.normalize(train_features.float(), dim=1)  # (N_train, D)
    test = F.normalize(test_features.float().to(device), dim=1)  # (N_test, D)
    k_max = max(ks)
    for rows in chunks(len(test), rows_per_chunk(len(train), memory_bytes)):
        similarity = test[rows] @ train.T  # (b, D) x (D, N_train) -> (b, N_train)
        nearest, index = similarity.topk(k_max, dim=1, largest=True, sorted=True)  # (b, k_max)
        neighbour_labels = train_labels[index]  # (b, k_max)
        weights = (nearest / temperature).exp()  # (b, k_max): exp(cos / T)
        rankings = {}
        for k in ks:
            votes = torch.zeros(len(nearest), num_classes, device=device)  # (b, classes)
            votes.scatter_add_(1, neighbour_labels[:, :k], weights[:, :k])  # sum of weights per class
            rankings[k] = votes.sort(dim=1, descending=True, stable=True).indices  # (b, classes)
        yield rows, rankings


def knn_classify_many(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    ks: Sequence[int] = (10, 20),
    temperature: float = 0.07,
    num_classes: int | None = None,
    memory_bytes: int = 2**29,
) -> dict[int, dict[str, float]]:
    """:func:`knn_classify` for several ``k`` from one similarity pass: ``{k: {"top1", "top5"}}``."""
    ks = _check(train_features, train_labels, test_features, ks, temperature)
    if len(test_labels) != len(test_features):
        raise ValueError("train_labels / test_labels must have one label per feature row")
    device = train_features.device
    test_labels = test_labels.to(device).long()
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    correct = {k: torch.zeros(2, dtype=torch.long, device=device) for k in ks}  # top1, top5 counts
    args = (train_features, train_labels, test_features, ks, temperature, num_classes, memory_bytes)
    for rows, rankings in knn_rankings(*args):
        targets = test_labels[rows, None]  # (b, 1)
        for k, ranking in rankings.items():
            hits = ranking == targets  # (b, classes)
            correct[k][0] += hits[:, :1].sum()
            correct[k][1] += hits[:, : min(5, k, num_classes)].sum()  # DINO: top-5 over min(5, k) classes
    total = len(test_features)
    return {k: {"top1": 100.0 * c[0].item() / total, "top5": 100.0 * c[1].item() / total} for k, c in correct.items()}


def knn_predict(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
) -> torch.Tensor:
    """The class :func:`knn_classify` predicts for each test feature: ``(N_test,)`` int64 on the features' device
    (its top-1 is the share of these equal to the labels)."""
    (k,) = _check(train_features, train_labels, test_features, (k,), temperature)
    if num_classes is None:
        num_classes = int(train_labels.max()) + 1
    args = (train_features, train_labels, test_features, (k,), temperature, num_classes)
    return torch.cat([rankings[k][:, 0] for _, rankings in knn_rankings(*args)])


def knn_classify(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
) -> dict[str, float]:
    """DINO's weighted k-NN: top-1 and top-5 accuracy in percent.

    Features are L2-normalised; for a test feature x, the k training features of largest cosine
    similarity s_i vote for their class with weight exp(s_i / T); the class of largest summed
    weight is the prediction: ``score_c = sum_{i in topk(x)} [y_i = c] exp(s_i / T)``.
    Top-5 counts the first ``min(5, k)`` classes, as DINO does. Equal scores rank the lower class
    index first; which of several training features tied at the k-th similarity is kept follows
    ``torch.topk`` (as in DINO). Test features are processed in chunks, so a million training
    features fit in memory.

    Args:
        train_features: ``(N_train, D)``; the computation runs on their device.
        train_labels: ``(N_train,)`` integer classes.
        test_features: ``(N_test, D)``.
        test_labels: ``(N_test,)``.
        k: neighbours (DINO reports 20, the SimPool paper 10), at most ``N_train``.
        temperature: T of the weights (0.07).
        num_classes: by default the largest label + 1.

    Returns:
        ``{"top1": %, "top5": %}``.
    """
    return knn_classify_many(train_features, train_labels, test_features, test_labels, (k,), temperature, num_classes)[
        k
    ]


def evaluate_knn(
    model: nn.Module,
    data: str | os.PathLike,
    train_split: str = "train",
    val_split: str = "val",
    ks: Sequence[int] = (10, 20),
    temperature: float = 0.07,
    resize: int = 256,
    img_size: int = 224,
    batch_size: int = 64,
    workers: int = 0,
    progress: bool = True,
) -> dict[int, dict[str, float]]:
    """k-NN of ``model``'s frozen features on ``<data>/<train_split>`` and ``<data>/<val_split>`` (ImageFolder).

    Images pass DINO's evaluation transform (``Resize(resize)``, ``CenterCrop(img_size)``); the model runs on
    the device of its parameters. Returns :func:`knn_classify_many`'s ``{k: {"top1", "top5"}}``.
    """
    device = next(model.parameters()).device
    transform = eval_transform(resize, img_size)
    train = image_folder(os.path.join(data, train_split), transform)
    val = image_folder(os.path.join(data, val_split), transform, classes=train.classes)
    if not ks or min(ks) < 1 or max(ks) > len(train):  # the memory is one feature per training image
        raise ValueError(
            f"k must be in [1, {len(train)}] (the number of training images in {os.path.join(data, train_split)}), "
            f"got {list(ks)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    splits = {
        name: extract_features(
            model, data_loader(dataset, batch_size, workers, device), device=device, progress=progress, desc=name
        )
        for name, dataset in (("train", train), ("val", val))
    }
    return knn_classify_many(*splits["train"], *splits["val"], ks, temperature, len(train.classes))
