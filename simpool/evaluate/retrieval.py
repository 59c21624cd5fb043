"""Image retrieval on Revisited Oxford and Paris: mAP and mP@k, Medium and Hard (Radenovic et al. 2018).

The protocol of revisitop's ``compute_map`` (paper Table 7), implemented from its description:
per query, junk images are removed from the ranking, average precision uses the trapezoid rule,
and queries without positives are left out of the mean.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms
from tqdm import tqdm

from ..data.revisitop import revisitop_datasets
from .features import IMAGENET_MEAN, IMAGENET_STD, pre_logits

# Protocol -> (positives, junk) as unions of revisitop's easy / hard / junk lists.
PROTOCOLS = {
    "easy": (("easy",), ("junk", "hard")),
    "medium": (("easy", "hard"), ("junk",)),
    "hard": (("hard",), ("junk", "easy")),
}


def average_precision(positive_ranks: np.ndarray, num_positives: int) -> float:
    """Trapezoid-rule AP of 0-based ranks of the positives (junk removed), over ``num_positives`` positives.

    For the j-th positive (0-based) at rank r: ``p0 = 1 if r == 0 else j / r``, ``p1 = (j + 1) / (r + 1)``,
    ``AP = sum_j (p0 + p1) / 2 / num_positives``: the area under the precision-recall curve by the
    trapezoid rule (revisitop's ``compute_ap``). Positives absent from the ranking add nothing.
    """
    ap = 0.0
    for j, r in enumerate(np.sort(np.asarray(positive_ranks))):
        p0 = 1.0 if r == 0 else j / r
        p1 = (j + 1) / (r + 1)
        ap += (p0 + p1) / 2.0 / num_positives
    return ap


def query_metrics(ranking: np.ndarray, positives, junk, kappas: Sequence[int]) -> tuple[float, list[float]]:
    """AP and precision@k of one query; ``(nan, [nan, ...])`` when it has no positives.

    ``ranking`` holds database indices by decreasing similarity. Each positive's rank is lowered by
    the number of junk images ranked before it. Precision@k is revisitop's: with 1-based ranks,
    ``k_q = min(max rank of a positive, k)`` and ``P@k = #{positives ranked <= k_q} / k_q``, so the
    denominator shrinks when every positive is above k (a quirk kept on purpose).
    """
    positives = np.asarray(list(positives), dtype=np.int64)
    if positives.size == 0:
        return math.nan, [math.nan] * len(kappas)
    ranking = np.asarray(ranking)
    pos = np.flatnonzero(np.isin(ranking, positives))  # 0-based ranks, sorted
    junk_ranks = np.flatnonzero(np.isin(ranking, np.asarray(list(junk), dtype=np.int64)))
    pos = pos - np.searchsorted(junk_ranks, pos)  # junk ranked before each positive is removed
    ap = average_precision(pos, positives.size)
    if pos.size == 0:
        return ap, [0.0] * len(kappas)
    pos = pos + 1  # 1-based
    precisions = []
    for k in kappas:
        kq = min(int(pos.max()), k)
        precisions.append(float((pos <= kq).sum()) / kq)
    return ap, precisions


def revisited_map(ranks, gnd: Sequence[dict], kappas: Sequence[int] = (1, 5, 10), protocols=("medium", "hard")):
    """mAP and mP@k of a ranking under the Medium and Hard protocols, in percent.

    Medium: positives = easy + hard, junk = junk. Hard: positives = hard, junk = junk + easy.
    Junk images are skipped in the ranking; a query without positives is left out of the means.

    Args:
        ranks: ``(N_db, N_query)`` integers; column q lists database indices by decreasing similarity
            (revisitop's layout: ``argsort(-similarity, axis=0)``).
        gnd: one dict per query with lists ``easy``, ``hard``, ``junk`` of database indices.
        kappas: the k of mP@k.
        protocols: any of ``"easy"``, ``"medium"``, ``"hard"``.

    Returns:
        ``{"medium": {"mAP": %, "mP@k": {k: %}}, "hard": {...}}``; NaN when no query has positives.
    """
    ranks = ranks.cpu().numpy() if torch.is_tensor(ranks) else np.asarray(ranks)
    if ranks.ndim != 2 or ranks.shape[1] != len(gnd):
        raise ValueError(
            f"ranks must be (N_db, N_query) with one column per gnd entry; got {ranks.shape}, {len(gnd)} gnd entries"
        )
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown:
        raise ValueError(f"unknown protocols {unknown}; valid: {sorted(PROTOCOLS)}")
    results = {}
    for protocol in protocols:
        ok_keys, junk_keys = PROTOCOLS[protocol]
        aps, precisions = [], []
        for q, entry in enumerate(gnd):
            ok = [i for key in ok_keys for i in entry.get(key, [])]
            junk = [i for key in junk_keys for i in entry.get(key, [])]
            ap, prec = query_metrics(ranks[:, q], ok, junk, kappas)
            if not math.isnan(ap):
                aps.append(ap)
                precisions.append(prec)
        mean_ap = 100.0 * float(np.mean(aps)) if aps else math.nan
        mean_p = np.mean(precisions, axis=0) * 100.0 if precisions else [math.nan] * len(kappas)
        results[protocol] = {"mAP": mean_ap, "mP@k": {int(k): float(p) for k, p in zip(kappas, mean_p, strict=True)}}
    return results


def rank_database(database_features: torch.Tensor, query_features: torch.Tensor) -> torch.Tensor:
    """``(N_db, N_query)`` database indices by decreasing cosine similarity (features L2-normalised here)."""
    similarity = F.normalize(database_features.float(), dim=1) @ F.normalize(query_features.float(), dim=1).T
    return similarity.argsort(dim=0, descending=True, stable=True)  # (N_db, N_query)


class Thumbnail:
    """PIL's ``thumbnail``: the longer side becomes at most ``size``, aspect kept (DINO's retrieval transform)."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image):
        image = image.copy()
        image.thumbnail((self.size, self.size), resample=3)  # 3 = Image.LANCZOS (the old ANTIALIAS)
        return image


@torch.no_grad()
def multiscale_features(model, image: torch.Tensor, scales: Sequence[float]) -> torch.Tensor:
    """Mean of the features of ``image`` ``(B, 3, H, W)`` resized bilinearly by each scale, L2-normalised (DINO)."""
    total = 0
    for scale in scales:
        scaled = image if scale == 1 else F.interpolate(image, scale_factor=scale, mode="bilinear", align_corners=False)
        total = total + pre_logits(model, scaled)  # (B, D)
    return F.normalize(total / len(scales), dim=1)


DEFAULT_IMG_SIZE = {"roxford5k": 224, "rparis6k": 512}  # DINO's README settings


def evaluate_retrieval(
    model: nn.Module,
    data: str | os.PathLike,
    dataset: str,
    img_size: int | None = None,
    multiscale: bool = False,
    query_crop: bool = True,
    progress: bool = True,
) -> dict:
    """mAP and mP@k (:func:`revisited_map`) of ``model``'s features on ``<data>/<dataset>`` (revisitop's layout).

    Images go one at a time, their longer side ``img_size`` (default: 224 for Oxford, 512 for Paris) at their
    own aspect ratio, so a ViT needs ``dynamic_img_size``; queries are cropped to their box unless
    ``query_crop`` is false. ``multiscale`` averages features at scales 1, 1/sqrt(2), 1/2.
    """
    device = next(model.parameters()).device
    size = img_size or DEFAULT_IMG_SIZE[dataset]
    transform = transforms.Compose(
        [Thumbnail(size), transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    database, queries, gnd = revisitop_datasets(data, dataset, transform, query_crop)
    scales = (1.0, 2**-0.5, 0.5) if multiscale else (1.0,)
    features = {}
    for name, images in (("database", database), ("queries", queries)):
        rows = [
            multiscale_features(model, image[None].to(device), scales).cpu()  # (1, D)
            for image, _ in tqdm(images, desc=name, disable=not progress, unit="image")
        ]
        features[name] = torch.cat(rows)  # (N, D)
    return revisited_map(rank_database(features["database"], features["queries"]), gnd["gnd"])
