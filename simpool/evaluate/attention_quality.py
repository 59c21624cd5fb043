"""How well an attention map covers the object: boxes from it against the object's box, and its mass in the mask.

- MaxBoxAccV2: :func:`simpool.evaluate.localization.max_box_acc_v2` (wsolevaluation's protocol), with BoxAcc@50;
- CorLoc of DINO-seg boxes (:func:`simpool.evaluate.discovery.dino_seg`: the biggest 4-connected component of
  the patches holding 60% of the attention mass), in percent;
- ``mask_mass``: the share of the attention inside the object's mask, ``sum_p m_p A_p / sum_p A_p`` averaged
  over images (a uniform map scores the mean mask area, ``uniform_mask_mass``; a map entirely on the object
  scores 1). It rewards a peaked map wherever it peaks less than a ranking metric does: read it with PxAP;
- PxAP (:func:`simpool.evaluate.localization.pxap`): wsolevaluation's pixel average precision of the map
  against the mask, in percent, threshold-free (a map that ignores the image scores about the mask share).

:func:`baseline_scores` scores the maps that ignore the image (:mod:`simpool.evaluate.baselines`) the same way:
every attention score stands beside them.

A set of maps that are each one value over all their locations (the uniform attention of GAP or of a head that
updates every token alike) ranks no location above another: its ranking scores (``RANKED``) are ``None``, not the
0 MaxBoxAccV2 that min-max normalising it to zeros would give, and its mask mass is the uniform map's.
:func:`read_scores` reads scores written before that rule the same way.

``attention_quality`` scores a set of low-resolution maps ``(N, h, w)`` with all of them: each map goes the
reference's own route (bicubic to 224, min-max) for MaxBoxAccV2, is thresholded on its patch grid for DINO-seg,
and is upsampled bilinearly to its mask's size for the mass. The probes (``simpool probe``) and the demo
(``simpool demo``) score their attention here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .baselines import image_independent, mean_map
from .discovery import corloc, dino_seg
from .localization import max_box_acc_v2
from .pixel_ap import pxap

RANKED = ("MaxBoxAccV2", "BoxAcc@50", "CorLoc", "PxAP")  # the scores of how a map ranks its locations


def constant_maps(maps: np.ndarray) -> bool:
    """Whether every one of the ``(N, h, w)`` maps is a single value over its locations (and there is one)."""
    maps = np.asarray(maps)
    if maps.size == 0:
        return False
    flat = maps.reshape(len(maps), -1)  # (N, h * w)
    return bool((flat.max(axis=1) == flat.min(axis=1)).all())


def read_scores(scores: dict) -> dict:
    """``scores`` (a head's or a baseline's) with the ranking scores of constant maps ``None``: outputs written
    before :func:`attention_quality` left them unscored gave such maps MaxBoxAccV2 0 and the uniform map's mask
    mass (to float32 rounding); those read as unscored."""
    legacy = scores.get("MaxBoxAccV2") == 0 and "uniform_mask_mass" in scores and scores.get("mask_mass") is not None
    if legacy and abs(scores["mask_mass"] - scores["uniform_mask_mass"]) <= 1e-6:
        return {**scores, **{key: None for key in RANKED if key in scores}}
    return scores


def mask_mass(maps: np.ndarray, masks: np.ndarray) -> float:
    """Mean over images of ``sum_p m_p A_p / sum_p A_p``; ``maps`` and ``masks`` ``(N, H, W)``, negative
    attention clipped to 0. Summed in the maps' floating precision (float32 maps, as a model gives them, in
    float32; other numbers in float64)."""
    maps = np.asarray(maps)
    maps = np.clip(maps if np.issubdtype(maps.dtype, np.floating) else maps.astype(np.float64), 0, None)
    masks = np.asarray(masks)
    if maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} differ in shape")
    masks = masks.astype(maps.dtype)
    return float(((maps * masks).sum((1, 2)) / np.maximum(maps.sum((1, 2)), 1e-12)).mean())


def upsample(maps: np.ndarray | torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """``(N, h, w)`` maps to ``(N, H, W)``, bilinear, in float32."""
    maps = torch.as_tensor(np.asarray(maps, dtype=np.float32))[:, None]  # (N, 1, h, w)
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)[:, 0].numpy()  # (N, H, W)


def dino_seg_corloc(
    maps: np.ndarray, boxes: Sequence[np.ndarray], image_sizes: Sequence[tuple[int, int]], patch_size: int
) -> float:
    """CorLoc (percent) of the DINO-seg box of each ``(h, w)`` map of patches of ``patch_size`` pixels, against
    its image's ``(G, 4)`` boxes; ``image_sizes`` are ``(W, H)``."""
    predicted = [
        dino_seg(torch.from_numpy(np.ascontiguousarray(m)), m.shape, patch_size, (size[1], size[0]))
        for m, size in zip(maps, image_sizes, strict=True)
    ]
    return corloc(predicted, boxes)


def attention_quality(
    maps: np.ndarray,
    boxes: Sequence[np.ndarray] | None = None,
    image_sizes: Sequence[tuple[int, int]] | None = None,
    masks: np.ndarray | None = None,
    cam_curve_interval: float = 0.01,
    patch_size: int | None = None,
) -> dict[str, float]:
    """``{"MaxBoxAccV2", "BoxAcc@50"}`` (percent) with ``boxes`` (per image ``(G, 4)`` in pixels of its
    ``(W, H)`` size), and ``"CorLoc"`` (percent) with them when ``patch_size`` (pixels per patch of the maps)
    is given; ``{"PxAP"}`` (percent) and ``{"mask_mass", "uniform_mask_mass"}`` (fractions) with ``masks``
    ``(N, H, W)``. Constant maps (:func:`constant_maps`) get ``None`` for the ranking scores."""
    maps = np.asarray(maps)  # (N, h, w), in its own precision (float64 when not floating)
    if not np.issubdtype(maps.dtype, np.floating):
        maps = maps.astype(np.float64)
    result: dict[str, float | None] = {}
    constant = constant_maps(maps)
    if boxes is not None and constant:
        result.update({"MaxBoxAccV2": None, "BoxAcc@50": None, **({"CorLoc": None} if patch_size is not None else {})})
    elif boxes is not None:
        scores = max_box_acc_v2(maps, boxes, image_sizes, cam_curve_interval=cam_curve_interval)
        result.update({"MaxBoxAccV2": scores["MaxBoxAccV2"], "BoxAcc@50": scores["BoxAcc@50"]})
        if patch_size is not None:
            result["CorLoc"] = dino_seg_corloc(maps, boxes, image_sizes, patch_size)
    if masks is not None:
        masks = np.asarray(masks)
        result["PxAP"] = None if constant else pxap(maps, masks.astype(np.uint8), cam_curve_interval=cam_curve_interval)
        result["mask_mass"] = mask_mass(upsample(maps, masks.shape[-2:]), masks)
        result["uniform_mask_mass"] = float(masks.astype(np.float64).mean())  # what a uniform map scores
    return result


def baseline_maps(
    count: int,
    grid: tuple[int, int],
    train_masks: np.ndarray,
    seed: int = 0,
    model_maps: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """The maps :func:`baseline_scores` scores, each ``(count, h, w)``: ``uniform``, ``centre``, ``box_prior``
    (:func:`~.baselines.image_independent`) and ``mean_map/<name>`` of each of ``model_maps``."""
    maps = image_independent(count, grid, train_masks, seed=seed)
    for name, model in (model_maps or {}).items():
        maps[f"mean_map/{name}"] = mean_map(model)
    return maps


def baseline_scores(
    grid: tuple[int, int],
    train_masks: np.ndarray,
    boxes: Sequence[np.ndarray] | None = None,
    image_sizes: Sequence[tuple[int, int]] | None = None,
    masks: np.ndarray | None = None,
    patch_size: int | None = None,
    seed: int = 0,
    model_maps: dict[str, np.ndarray] | None = None,
) -> dict[str, dict[str, float]]:
    """:func:`attention_quality` of the maps that ignore the image, on the evaluated images' ``boxes`` and ``masks``:

    ``uniform``, ``centre``, ``box_prior`` (from ``train_masks`` ``(M, H, W)``, the training split's objects) on the
    maps' ``grid`` ``(h, w)``; and, for each ``name: maps`` of ``model_maps``, ``mean_map/<name>``: that model's
    maps averaged over the evaluated images and used for every image (what its position alone explains).
    """
    count = len(boxes) if boxes is not None else len(masks)
    maps = baseline_maps(count, grid, train_masks, seed, model_maps)
    return {
        name: attention_quality(value, boxes, image_sizes, masks, patch_size=patch_size) for name, value in maps.items()
    }


def strongest_baseline(baselines: dict[str, dict[str, float]], metric: str = "MaxBoxAccV2") -> tuple[str, float]:
    """The image-independent map (``uniform``, ``centre``, ``box_prior``) that scores highest on ``metric``."""
    fixed = {
        name: scores[metric] for name, scores in baselines.items() if "/" not in name and scores.get(metric) is not None
    }
    if not fixed:
        raise ValueError(f"no image-independent baseline has {metric!r}")
    name = max(fixed, key=fixed.get)
    return name, fixed[name]


__all__ = [
    "RANKED",
    "attention_quality",
    "baseline_maps",
    "baseline_scores",
    "constant_maps",
    "dino_seg_corloc",
    "mask_mass",
    "read_scores",
    "strongest_baseline",
    "upsample",
]
