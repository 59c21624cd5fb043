"""Recall@k of image retrieval for deep metric learning (Proxy-Anchor, Kim et al. CVPR 2020; paper Table C5).

A query counts as a hit at k when an image of its class is among its k nearest neighbours by cosine
similarity. CUB-200, Cars-196 and SOP search the evaluation set itself, the query excluded; In-Shop
searches a separate gallery.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.folders import ImageList
from ..data.recall_datasets import read_recall_dataset
from .features import chunks, data_loader, eval_transform, extract_features, rows_per_chunk

DEFAULT_KS = {"cub": (1, 2, 4, 8, 16, 32), "cars": (1, 2, 4, 8, 16, 32), "sop": (1, 10, 100, 1000)}
DEFAULT_KS["inshop"] = (1, 10, 20, 30, 40, 50)


def _first_positive_rank(similarity: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """Per row, how many non-matching items are strictly more similar than the best matching one.

    ``similarity`` and ``same`` are ``(b, N)``; rows without a match get ``N`` (never a hit).
    """
    best = similarity.masked_fill(~same, float("-inf")).amax(dim=1, keepdim=True)  # (b, 1)
    beaten = ((similarity > best) & ~same).sum(dim=1)  # (b,)
    return torch.where(same.any(dim=1), beaten, torch.full_like(beaten, similarity.shape[1]))


def _recall(ranks: torch.Tensor, ks: Sequence[int]) -> dict[int, float]:
    return {int(k): 100.0 * (ranks < k).float().mean().item() for k in ks}


def recall_at_k(
    features: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 2, 4, 8), memory_bytes: int = 2**29
) -> dict[int, float]:
    """Recall@k in percent, each item a query against all the others (CUB, Cars, SOP).

    ``R@k = 100 / N * sum_q [exists j != q in the k most cosine-similar items with y_j = y_q]``.
    The query itself is excluded by index (Proxy-Anchor drops the first neighbour, the same unless
    another item is exactly as similar as the query to itself); ties between a matching and a
    non-matching neighbour count for the match, as In-Shop's rule does. Chunked over queries.

    Args:
        features: ``(N, D)``, L2-normalised here.
        labels: ``(N,)`` classes.
        ks: the k of Recall@k.

    Returns:
        ``{k: recall %}``.
    """
    if features.ndim != 2 or len(labels) != len(features):
        raise ValueError(f"features must be (N, D) with one label each: {tuple(features.shape)}, {len(labels)} labels")
    features = F.normalize(features.float(), dim=1)  # (N, D)
    labels = labels.to(features.device)
    ranks = []
    for rows in chunks(len(features), rows_per_chunk(len(features), memory_bytes)):
        similarity = features[rows] @ features.T  # (b, D) x (D, N) -> (b, N)
        own = torch.arange(rows.start, rows.stop, device=features.device)
        similarity[torch.arange(len(own)), own] = float("-inf")  # the query is not its own neighbour
        same = labels[rows, None] == labels[None]  # (b, N)
        same[torch.arange(len(own)), own] = False
        ranks.append(_first_positive_rank(similarity, same))
    return _recall(torch.cat(ranks), ks)


def recall_at_k_gallery(
    query_features: torch.Tensor,
    query_labels: torch.Tensor,
    gallery_features: torch.Tensor,
    gallery_labels: torch.Tensor,
    ks: Sequence[int] = (1, 10, 20, 30, 40, 50),
    memory_bytes: int = 2**29,
) -> dict[int, float]:
    """Recall@k in percent of queries against a separate gallery (In-Shop, ``evaluate_cos_Inshop``).

    With ``t_q`` the largest cosine similarity of query q to a gallery item of its class, q is a hit at
    k iff fewer than k gallery items of other classes have similarity strictly above ``t_q``.

    Raises:
        ValueError: a query has no gallery item of its class (the reference would crash).
    """
    query = F.normalize(query_features.float(), dim=1)  # (Nq, D)
    gallery = F.normalize(gallery_features.float().to(query.device), dim=1)  # (Ng, D)
    query_labels, gallery_labels = query_labels.to(query.device), gallery_labels.to(query.device)
    lonely = (~torch.isin(query_labels, gallery_labels)).sum().item()
    if lonely:
        raise ValueError(f"{lonely} queries have no gallery item of their class")
    ranks = []
    for rows in chunks(len(query), rows_per_chunk(len(gallery), memory_bytes)):
        similarity = query[rows] @ gallery.T  # (b, D) x (D, Ng) -> (b, Ng)
        ranks.append(_first_positive_rank(similarity, query_labels[rows, None] == gallery_labels[None]))
    return _recall(torch.cat(ranks), ks)


def evaluate_recall(
    model: nn.Module,
    data: str | os.PathLike,
    dataset: str,
    ks: Sequence[int] | None = None,
    resize: int = 256,
    img_size: int = 224,
    batch_size: int = 64,
    workers: int = 0,
    progress: bool = True,
) -> dict[int, float]:
    """Recall@k of ``model``'s features on ``dataset``'s evaluation split under ``data`` (Proxy-Anchor's).

    Images pass ``Resize(resize, bilinear)`` and ``CenterCrop(img_size)``; In-Shop searches its gallery
    (:func:`recall_at_k_gallery`), the others themselves (:func:`recall_at_k`). ``ks`` default to the
    dataset's usual (:data:`DEFAULT_KS`).
    """
    device = next(model.parameters()).device
    splits = read_recall_dataset(dataset, data)
    transform = eval_transform(resize, img_size, interpolation="bilinear")
    ks = ks or DEFAULT_KS[dataset]
    features = {
        name: extract_features(
            model,
            data_loader(ImageList(splits[name], transform), batch_size, workers, device),
            device=device,
            progress=progress,
            desc=name,
        )
        for name in (("query", "gallery") if dataset == "inshop" else ("eval",))
    }
    if dataset == "inshop":
        return recall_at_k_gallery(*features["query"], *features["gallery"], ks)
    return recall_at_k(*features["eval"], ks)
