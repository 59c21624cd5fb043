"""The image-independent baselines on a wsolevaluation split, scored exactly as a model's saved maps are.

``simpool eval localization`` puts them beside the model: each baseline is one map used for every image of the
split (:mod:`simpool.evaluate.baselines`), made on a ``grid``, then bicubic to 224 and min-max as
:func:`~simpool.evaluate.localization.model_scoremaps` treats a model's map, and scored by
:func:`~simpool.evaluate.localization.wsol_localization` (MaxBoxAccV2, and PxAP where the split has masks):

- ``uniform``: ``1 + 1e-6 u``, one seeded noise map (an exactly constant map ranks nothing);
- ``centre``: a centred Gaussian of standard deviation a quarter of each side;
- ``box_prior``: :func:`object_prior`, the mean object of a split (its masks, else its boxes filled) on ``grid``;
- ``mean_map/<name>``: the scored maps' own mean (each scaled to sum 1), the part of their score that position
  alone explains.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..data.wsol import WSOLMetadata, read_mask
from .baselines import box_prior, centre, mean_map, uniform
from .localization import resize_boxes, wsol_localization
from .scoremaps import RESIZE_LENGTH, prepare_scoremaps

CHUNK = 256  # images per step when averaging (the masks or maps of a whole split need not fit in memory)


def object_prior(
    metadata: WSOLMetadata,
    mask_root: str | os.PathLike | None = None,
    size: tuple[int, int] = (RESIZE_LENGTH, RESIZE_LENGTH),
) -> np.ndarray:
    """The mean object of a split ``(H, W)`` float64 at ``size = (H, W)``: the mean of its images' masks (union of
    the instances, nearest-resized, ignore regions as background) when it lists masks and ``mask_root`` is given,
    else of its boxes filled (rescaled to ``size`` with the metric's truncation, :func:`resize_boxes`).

    Raises:
        ValueError: the split has neither masks (with a root) nor boxes.
    """
    if metadata.masks and mask_root is not None:
        ids = [i for i in metadata.image_ids if i in metadata.masks]
        total = sum(read_mask(mask_root, metadata.masks[i], "", size).astype(np.float64) for i in ids)
        return total / len(ids)
    ids = [i for i in metadata.image_ids if i in metadata.boxes]
    if not ids:
        raise ValueError("the prior's split has no box (and no mask with a mask root): nothing to average")
    scale = (size[1], size[0])  # resize_boxes takes (W, H)
    boxes = [resize_boxes(metadata.boxes[i], metadata.image_sizes[i], scale) for i in ids]  # (G, 4) each
    total = np.zeros(size)
    for start in range(0, len(boxes), CHUNK):
        chunk = boxes[start : start + CHUNK]
        total += len(chunk) * box_prior(1, size, boxes=chunk, image_hw=size)[0]  # their mean, filled at size
    return total / len(ids)


def split_mean_map(maps: Sequence[np.ndarray]) -> np.ndarray:
    """:func:`~simpool.evaluate.baselines.mean_map` of ``(N, h, w)`` maps as one ``(h, w)`` map, in chunks."""
    total = np.zeros(np.shape(maps[0]))
    for start in range(0, len(maps), CHUNK):
        chunk = np.asarray(maps[start : start + CHUNK])  # (n, h, w)
        total += len(chunk) * mean_map(chunk)[0]
    return total / len(maps)


def split_baselines(
    metadata: WSOLMetadata,
    prior: np.ndarray,
    grid: tuple[int, int] = (14, 14),
    masks: np.ndarray | None = None,
    model_maps: dict[str, Sequence[np.ndarray]] | None = None,
    seed: int = 0,
    iou_thresholds: Sequence[int] = (30, 50, 70),
    cam_curve_interval: float = 0.01,
    multi_contour: bool = True,
) -> dict[str, dict[str, float]]:
    """``{name: scores}`` of ``uniform``, ``centre``, ``box_prior`` (``prior``: :func:`object_prior`) on ``grid``
    and ``mean_map/<name>`` of each of ``model_maps`` (maps as scored), each one map for every image of
    ``metadata``, scored by :func:`~simpool.evaluate.localization.wsol_localization` with ``masks``."""
    maps = {
        "uniform": uniform(1, grid, seed)[0],
        "centre": centre(1, grid)[0],
        "box_prior": box_prior(1, grid, masks=np.asarray(prior)[None])[0],
    }
    for name, values in (model_maps or {}).items():
        maps[f"mean_map/{name}"] = split_mean_map(values)
    count = len(metadata.image_ids)
    scores = {}
    for name, one in maps.items():
        scoremap = prepare_scoremaps(np.asarray(one, dtype=np.float64)[None])[0]  # (224, 224) in [0, 1]
        scores[name] = wsol_localization(
            metadata, [scoremap] * count, iou_thresholds, cam_curve_interval, multi_contour, masks=masks
        )
    return scores


__all__ = ["object_prior", "split_baselines", "split_mean_map"]
