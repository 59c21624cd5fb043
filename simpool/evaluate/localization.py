"""MaxBoxAccV2: weakly supervised object localization from score maps, exactly as wsolevaluation computes it.

Choe et al., "Evaluating Weakly Supervised Object Localization Methods Right", CVPR 2020
(clovaai/wsolevaluation @ 96f4b886, ``evaluation.py`` and ``inference.py``). For a score map ``s`` in
[0, 1] at 224x224 and a CAM threshold ``tau``, the foreground is ``uint8(255 s) > int(tau * max uint8(255 s))``;
every contour OpenCV finds in it with ``RETR_TREE`` (outer boundaries *and* hole boundaries) gives a box
``(x, y, min(x + w, 223), min(y + h, 223))``. An image is correct at ``(tau, delta)`` when the best box has
IoU >= delta / 100 with any ground-truth box (IoU with the +1 inclusive-pixel convention). Then

    BoxAcc(tau, delta) = 100 * #correct / N,  MaxBoxAcc(delta) = max_tau BoxAcc(tau, delta),
    MaxBoxAccV2 = mean_{delta in {30, 50, 70}} MaxBoxAcc(delta).

Every threshold at once (:func:`iou_curve`). The contours' boxes are the boxes of connected components:
an outer border per 8-connected foreground component, a hole border per 4-connected background
component that does not touch the image border (traced on the foreground pixels around the hole, so
its box is the hole's grown by one pixel). The compiled kernel ``_level_sets`` finds the components of
all thresholds with two union-find sweeps over the pixels sorted by value (a max-tree and a min-tree),
O(pixels) per map whatever the number of thresholds. Without it (no C compiler at install time), and for
the largest-contour variant, one ``findContours`` runs per distinct level: thresholds that truncate to
the same 8-bit level share a mask (at interval 0.001, 1,000 thresholds give at most 255 masks).
:func:`iou_curve_loop` is wsolevaluation's per-threshold loop, kept as the reference for tests and
``benchmarks/localization_speed.py``; all give the same numbers.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

try:
    from simpool.evaluate import _level_sets
except ImportError:  # built without a C compiler: one findContours per distinct level, same numbers
    _level_sets = None

from ..utils import usable_cpus
from .pixel_ap import pxap
from .scoremaps import (
    RESIZE_LENGTH,
    cam_thresholds,
    check_scoremap,
    normalize_scoremap,
    prepare_scoremaps,
    resize_scoremap,
)

TRACE_THREADS = max(1, min(usable_cpus(), 8))  # threads tracing the maps' boxes
TRACE_CHUNK = 64  # maps traced together (their boxes are held at once)


def resize_boxes(boxes, image_size, resize_size=(RESIZE_LENGTH, RESIZE_LENGTH)) -> np.ndarray:
    """Boxes ``(x0, y0, x1, y1)`` from an image of ``(W, H)`` to ``resize_size``, truncated as ``resize_bbox``.

    ``x' = int(x * W' / W)``, ``y' = int(y * H' / H)``.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)  # (M, 4)
    if (boxes < 0).any():
        raise ValueError(f"box coordinates must be non-negative, got {boxes.tolist()}")
    scale_x = float(resize_size[0]) / float(image_size[0])
    scale_y = float(resize_size[1]) / float(image_size[1])
    scale = np.array([scale_x, scale_y, scale_x, scale_y])
    return (boxes * scale).astype(np.int64)  # truncation toward zero: (M, 4)


def box_iou_inclusive(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU matrix ``(A, B)`` with the +1 inclusive-pixel convention of ``calculate_multiple_iou``.

    ``inter = max(0, min(x1) - max(x0) + 1) * max(0, min(y1) - max(y0) + 1)``,
    ``area = (x1 - x0 + 1) * (y1 - y0 + 1)``; a union <= 0 gives IoU 0.
    """
    a = np.asarray(boxes_a, dtype=np.int64)[:, None, :]  # (A, 1, 4)
    b = np.asarray(boxes_b, dtype=np.int64)[None, :, :]  # (1, B, 4)
    inter_w = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    inter_h = np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    inter = inter_w * inter_h  # (A, B)
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - inter  # (A, B)
    degenerate = union <= 0
    return np.where(degenerate, 0.0, inter / np.where(degenerate, 1, union))


def _to_uint8(scoremap: np.ndarray) -> np.ndarray:
    return (np.asarray(scoremap, dtype=np.float64) * 255).astype(np.uint8)  # truncation, as the reference


def _levels(image: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``int(tau * max(uint8 map))`` per threshold: pixels strictly above it are foreground."""
    return (thresholds * np.float64(image.max())).astype(np.int64)  # (T,)


def _contour_boxes(contours, width: int, height: int) -> np.ndarray:
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
    return np.asarray(boxes, dtype=np.int64).reshape(-1, 4)  # (M, 4)


def _boxes_at_levels(image: np.ndarray, levels: Sequence[int], multi_contour: bool) -> list[np.ndarray]:
    """Boxes of each mask ``image > level``, one ``findContours`` per level (the reference's ``scoremap2bbox``)."""
    height, width = image.shape
    out = []
    for level in levels:
        mask = cv2.threshold(image, float(level), 255, cv2.THRESH_BINARY)[1]  # 255 where image > level
        contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        if len(contours) == 0:
            out.append(np.zeros((1, 4), dtype=np.int64))
            continue
        if not multi_contour:
            contours = [max(contours, key=cv2.contourArea)]
        out.append(_contour_boxes(contours, width, height))
    return out


def scoremap_boxes(scoremap: np.ndarray, thresholds: Sequence[float], multi_contour: bool = True) -> list[np.ndarray]:
    """Boxes at each threshold, one ``findContours`` per threshold (``compute_bboxes_from_scoremaps``).

    Returns:
        A list of ``(M_t, 4)`` int arrays; ``[[0, 0, 0, 0]]`` where the foreground is empty.
        ``multi_contour=False`` keeps only the contour of largest ``cv2.contourArea`` (MaxBoxAcc v1).
    """
    image = _to_uint8(scoremap)  # (H, W)
    return _boxes_at_levels(image, _levels(image, np.asarray(thresholds, dtype=np.float64)), multi_contour)


def _best_ious(boxes: list[np.ndarray], gt_boxes: np.ndarray) -> np.ndarray:
    """Best IoU with any ground-truth box within each ``(M_k, 4)`` array (``M_k >= 1``): ``(K,)``.

    The IoUs of all boxes in one call, then the best of each array, as ``BoxEvaluator.accumulate`` does.
    """
    first = np.cumsum([0] + [len(b) for b in boxes[:-1]])  # first box of each array: (K,)
    best = box_iou_inclusive(np.concatenate(boxes), gt_boxes).max(axis=1)  # (sum M_k,)
    return np.maximum.reduceat(best, first)


def iou_curve_loop(
    scoremap: np.ndarray, gt_boxes: np.ndarray, thresholds: Sequence[float], multi_contour: bool = True
) -> np.ndarray:
    """Best IoU with any ground-truth box at each threshold, one ``findContours`` per threshold: ``(T,)``.

    wsolevaluation's loop as written (``BoxEvaluator.accumulate``), kept as the reference for tests and
    ``benchmarks/localization_speed.py``.
    """
    gt_boxes = np.asarray(gt_boxes, dtype=np.int64).reshape(-1, 4)
    return _best_ious(scoremap_boxes(scoremap, thresholds, multi_contour), gt_boxes)


def _level_set_boxes(image: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every contour box of every mask ``image > level``, from the compiled sweeps (``_level_sets.c``).

    Returns:
        ``(boxes, level_index)``: ``(M, 4)`` boxes with the reference's convention, and the index into
        ``levels`` (strictly increasing, in [-1, 254]) of the mask each came from ``(M,)``. A level whose
        mask is empty has no box.
    """
    height, width = image.shape
    image = np.ascontiguousarray(image, dtype=np.uint8)  # (H, W)
    levels = np.ascontiguousarray(levels, dtype=np.int32)  # (K,)
    packed = _level_sets.level_set_boxes(image, height, width, levels)  # int32 rows as bytes
    rows = np.frombuffer(packed, dtype=np.int32).reshape(-1, 6).astype(np.int64)  # (M, 6): level, kind, box
    hole = rows[:, 1]  # 1: a hole, whose border lies one pixel outside it
    x0, y0 = rows[:, 2] - hole, rows[:, 3] - hole  # the contour's points' box: (M,)
    x_end, y_end = rows[:, 4] + hole + 1, rows[:, 5] + hole + 1  # boundingRect's x + w, y + h
    boxes = np.stack([x0, y0, np.minimum(x_end, width - 1), np.minimum(y_end, height - 1)], axis=1)  # (M, 4)
    return boxes, rows[:, 0]


def candidate_boxes(
    scoremap: np.ndarray, thresholds: Sequence[float], multi_contour: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidate boxes of every threshold: the part of :func:`iou_curve` that depends on the map alone.

    Returns:
        ``(boxes, level_index, key)``: ``(M, 4)`` boxes, the distinct level ``(M,)`` each came from, and each
        threshold's distinct level ``(T,)``. A distinct level with no box has an empty mask.
    """
    image = _to_uint8(scoremap)  # (H, W)
    levels = _levels(image, np.asarray(thresholds, dtype=np.float64))  # (T,)
    # thresholds of one level share their mask: each distinct level once. A level below -1 gives the
    # mask of -1 (everything), one of 255 or more the empty mask.
    distinct, key = np.unique(np.clip(levels, -1, 255), return_inverse=True)  # (K,), (T,)
    if multi_contour and _level_sets is not None:
        boxes, level_index = _level_set_boxes(image, distinct[distinct < 255])  # (M, 4), (M,)
        return boxes, level_index, key
    # the largest contour (v1), or no compiled kernel: one findContours per distinct level
    per_level = _boxes_at_levels(image, distinct, multi_contour)  # K arrays (M_k, 4), M_k >= 1
    level_index = np.repeat(np.arange(len(per_level)), [len(b) for b in per_level])  # (M,)
    return np.concatenate(per_level), level_index, key


def best_iou_curve(candidates: tuple[np.ndarray, np.ndarray, np.ndarray], gt_boxes: np.ndarray) -> np.ndarray:
    """Best IoU with any ground-truth box at each threshold ``(T,)``, from :func:`candidate_boxes`."""
    boxes, level_index, key = candidates
    gt_boxes = np.asarray(gt_boxes, dtype=np.int64).reshape(-1, 4)  # (G, 4)
    per_level = np.full(int(key.max()) + 1, -np.inf)  # (K,)
    np.maximum.at(per_level, level_index, box_iou_inclusive(boxes, gt_boxes).max(axis=1, initial=-np.inf))
    empty_iou = box_iou_inclusive(np.zeros((1, 4), np.int64), gt_boxes).max()  # no contour: [0, 0, 0, 0]
    return np.where(np.isneginf(per_level), empty_iou, per_level)[key]  # (T,)


def iou_curve(
    scoremap: np.ndarray, gt_boxes: np.ndarray, thresholds: Sequence[float], multi_contour: bool = True
) -> np.ndarray:
    """Best IoU with any ground-truth box at each threshold ``(T,)``; same numbers as :func:`iou_curve_loop`.

    Args:
        scoremap: ``(H, W)`` float map in [0, 1] (224x224 in the protocol).
        gt_boxes: ``(G, 4)`` ground-truth boxes ``(x0, y0, x1, y1)`` in the map's pixel coordinates.
        thresholds: CAM thresholds ``tau`` in [0, 1).
        multi_contour: every contour gives a box (V2); False: only the largest contour (v1).
    """
    return best_iou_curve(candidate_boxes(scoremap, thresholds, multi_contour), gt_boxes)


def box_accuracy_counts(
    score_maps: Sequence[np.ndarray],
    gt_boxes_224: Sequence[np.ndarray],
    thresholds: np.ndarray,
    iou_thresholds: Sequence[int] = (30, 50, 70),
    multi_contour: bool = True,
    progress: bool = False,
) -> np.ndarray:
    """Number of correct images per IoU level and CAM threshold, ``(len(iou_thresholds), T)``.

    ``BoxEvaluator.accumulate``: an image is correct at ``(delta, tau)`` when its best IoU is
    ``>= delta / 100``. Ground-truth boxes must already be at the maps' resolution (:func:`resize_boxes`).
    """
    from tqdm import tqdm

    if len(score_maps) != len(gt_boxes_224):
        raise ValueError(f"{len(score_maps)} score maps and {len(gt_boxes_224)} box lists")
    counts = np.zeros((len(iou_thresholds), len(thresholds)), dtype=np.int64)
    levels = np.asarray(iou_thresholds, dtype=np.float64)[:, None] / 100  # (D, 1)
    bar = tqdm(total=len(score_maps), disable=not progress, desc="MaxBoxAccV2")
    # the kernel (and findContours) release the GIL: the maps of a chunk are traced on every core at once
    with ThreadPoolExecutor(max_workers=TRACE_THREADS) as pool:
        for first in range(0, len(score_maps), TRACE_CHUNK):
            maps = score_maps[first : first + TRACE_CHUNK]
            # an image-independent map (a baseline, a model's mean map) repeats for every image: its boxes once
            digests = [hashlib.blake2b(np.ascontiguousarray(m).tobytes(), digest_size=16).digest() for m in maps]
            unique = {digest: scoremap for digest, scoremap in zip(digests, maps, strict=True)}
            traced = pool.map(lambda scoremap: candidate_boxes(scoremap, thresholds, multi_contour), unique.values())
            candidates = dict(zip(unique, traced, strict=True))
            for digest, boxes in zip(digests, gt_boxes_224[first : first + TRACE_CHUNK], strict=True):
                counts += best_iou_curve(candidates[digest], boxes)[None] >= levels  # (D, T)
            bar.update(len(maps))
    bar.close()
    return counts


def max_box_acc_v2(
    score_maps,
    gt_boxes: Sequence,
    image_sizes: Sequence,
    iou_thresholds: Sequence[int] = (30, 50, 70),
    cam_curve_interval: float = 0.01,
    multi_contour: bool = True,
    normalize: bool = True,
    progress: bool = False,
) -> dict[str, float]:
    """MaxBoxAccV2 of score maps against ground-truth boxes, as wsolevaluation's ``BoxEvaluator``.

    ``MaxBoxAcc(delta) = max_tau 100 * #{images with max IoU(boxes(s >= tau), GT) >= delta/100} / N`` and
    ``MaxBoxAccV2 = mean_delta MaxBoxAcc(delta)`` (Choe et al., CVPR 2020, Sec. 4.1), with the threshold
    ``tau`` chosen over the whole set separately for each ``delta``.

    Args:
        score_maps: ``(N, h, w)`` maps (numpy or torch), or a list of 2-D maps.
        gt_boxes: per image, ``(G_i, 4)`` boxes ``(x0, y0, x1, y1)`` in original-image pixels.
        image_sizes: per image, ``(W, H)`` of the original image (boxes are rescaled to 224 with truncation).
        iou_thresholds: IoU levels ``delta`` in percent.
        cam_curve_interval: threshold step; 0.01 as ``evaluation.py``'s default, 0.001 for paper numbers.
        multi_contour: every contour gives a candidate box (V2); False: only the largest (v1).
        normalize: the reference's inference steps first: bicubic resize to 224x224 and min-max
            normalisation (NaN or constant maps become zeros). False: maps must already be 224x224 in
            [0, 1] (as ``evaluation.py`` reads saved ``.npy`` maps) and are checked.
        progress: show a progress bar.

    Returns:
        ``{"MaxBoxAccV2", "BoxAcc@30", "BoxAcc@50", "BoxAcc@70", "threshold@30", ...}`` in percent; each
        threshold is the first ``tau`` reaching that level's maximum.
    """
    if normalize:
        maps = list(prepare_scoremaps(score_maps))
    else:
        maps = [np.asarray(m.detach().cpu() if hasattr(m, "detach") else m, dtype=np.float64) for m in score_maps]
        for index, scoremap in enumerate(maps):
            check_scoremap(scoremap, f"score map {index}")
            if scoremap.shape != (RESIZE_LENGTH, RESIZE_LENGTH):
                raise ValueError(f"score map {index} must be 224x224 with normalize=False, got {scoremap.shape}")
    if not (len(maps) == len(gt_boxes) == len(image_sizes)):
        raise ValueError(f"{len(maps)} score maps, {len(gt_boxes)} box lists and {len(image_sizes)} image sizes")
    if len(maps) == 0:
        raise ValueError("score_maps is empty")
    for index, boxes in enumerate(gt_boxes):
        if len(boxes) == 0:
            raise ValueError(f"image {index} has no ground-truth box")
    resized = [resize_boxes(boxes, size) for boxes, size in zip(gt_boxes, image_sizes, strict=True)]
    thresholds = cam_thresholds(cam_curve_interval)
    counts = box_accuracy_counts(maps, resized, thresholds, iou_thresholds, multi_contour, progress)
    accuracy = counts * 100.0 / float(len(maps))  # BoxAcc(delta, tau): (D, T)
    result = {"MaxBoxAccV2": float(np.average(accuracy.max(axis=1)))}
    result.update({f"BoxAcc@{delta}": float(accuracy[row].max()) for row, delta in enumerate(iou_thresholds)})
    result.update(
        {f"threshold@{delta}": float(thresholds[accuracy[row].argmax()]) for row, delta in enumerate(iou_thresholds)}
    )
    return result


def model_scoremaps(
    model,
    data: str | os.PathLike,
    image_ids: Sequence[str],
    class_labels: dict[str, int] | None = None,
    source: str = "auto",
    batch_size: int = 32,
    progress: bool = True,
    image_size: int = RESIZE_LENGTH,
) -> np.ndarray:
    """``(N, 224, 224)`` normalised maps of ``model`` for the images ``<data>/<image_id>``.

    Images are resized to ``image_size`` squared without a crop (the reference: 224); the maps are the model's attention
    (:func:`simpool.models.attention_maps` with ``source``), or with ``source="cam"`` the class activation map
    of each image's class in ``class_labels``; then bicubic to 224 and min-max (:func:`prepare_scoremaps`).
    The model runs on the device of its parameters.
    """
    import torch
    from torchvision import transforms
    from tqdm import tqdm

    from ..data.folders import load_rgb
    from ..models import attention_maps
    from .cam import class_activation_maps
    from .features import IMAGENET_MEAN, IMAGENET_STD

    device = next(model.parameters()).device
    resize = transforms.Resize((image_size, image_size))
    transform = transforms.Compose([resize, transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    maps = []
    for start in tqdm(range(0, len(image_ids), batch_size), desc="score maps", disable=not progress):
        batch_ids = image_ids[start : start + batch_size]
        images = torch.stack([transform(load_rgb(Path(data) / i)) for i in batch_ids]).to(device)  # (B, 3, S, S)
        with torch.no_grad():
            if source == "cam":
                targets = torch.tensor([class_labels[i] for i in batch_ids])
                batch = class_activation_maps(model, images, targets)  # (B, h, w)
            else:
                batch = attention_maps(model, images, source=source)  # (B, h, w)
        maps.append(prepare_scoremaps(batch.float().cpu()))  # bicubic to 224, min-max: (B, 224, 224)
    return np.concatenate(maps)


def wsol_localization(
    metadata,
    score_maps,
    iou_thresholds: Sequence[int] = (30, 50, 70),
    cam_curve_interval: float = 0.01,
    multi_contour: bool = True,
    progress: bool = False,
    masks=None,
) -> dict[str, float]:
    """:func:`max_box_acc_v2` of 224x224 maps in [0, 1], one per image of a split's ``metadata``
    (:func:`simpool.data.wsol.read_wsol_metadata`), in the order of its ``image_ids``; evaluated as given. With
    ``masks`` (``(N, 224, 224)``, 0/1 and 255 on ignored pixels: :func:`simpool.data.wsol.load_masks`), also
    ``"PxAP"`` (:func:`pxap`; its min-max leaves maps that reach 0 and 1, as wsolevaluation asks of saved maps,
    as they are). A split whose metadata has masks and no box at all (OpenImages) gets PxAP alone.

    Raises:
        ValueError: an image has no box in the metadata's localization.txt (when the box metrics are computed).
    """
    ids = metadata.image_ids
    result: dict[str, float] = {}
    if metadata.boxes or masks is None:
        missing = [i for i in ids if i not in metadata.boxes]
        if missing:
            raise ValueError(f"{len(missing)} images have no box in localization.txt, e.g. {missing[0]!r}")
        result = max_box_acc_v2(
            score_maps,
            [metadata.boxes[i] for i in ids],
            [metadata.image_sizes[i] for i in ids],
            iou_thresholds=tuple(iou_thresholds),
            cam_curve_interval=cam_curve_interval,
            multi_contour=multi_contour,
            normalize=False,
            progress=progress,
        )
    if masks is not None:
        result["PxAP"] = pxap(score_maps, masks, cam_curve_interval=cam_curve_interval)
    return result


__all__ = [
    "RESIZE_LENGTH",
    "cam_thresholds",
    "check_scoremap",
    "normalize_scoremap",
    "prepare_scoremaps",
    "pxap",
    "resize_scoremap",
    "resize_boxes",
    "box_iou_inclusive",
    "scoremap_boxes",
    "iou_curve_loop",
    "best_iou_curve",
    "candidate_boxes",
    "iou_curve",
    "box_accuracy_counts",
    "max_box_acc_v2",
    "model_scoremaps",
    "wsol_localization",
]
