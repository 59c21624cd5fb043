"""Unsupervised single-object discovery: LOST and DINO-seg boxes, scored by CorLoc.

Simeoni et al., "Localizing Objects with Self-Supervised Transformers and no Labels", BMVC 2021
(valeoai/LOST @ fcedbecb, ``object_discovery.py``, ``datasets.py : bbox_iou``, ``main_lost.py``).
Every function takes one image's features on its patch grid ``grid_hw = (rows, cols)`` (the image
zero-padded at the bottom/right to a multiple of the patch size) and returns a box
``[x0, y0, x1, y1]`` in pixels of the unpadded image (``image_hw = (H, W)``), end exclusive.
:func:`discover` runs a model over a dataset's images (:func:`discovery_items`); DINO-seg on a CLS ViT is
scored for every head of the last block, the best head (as the paper reports DINO-seg) and the mean over heads.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.ndimage
import torch
from torch import nn


def _patch(patch_size) -> tuple[int, int]:
    ph, pw = (patch_size, patch_size) if np.isscalar(patch_size) else tuple(patch_size)
    return int(ph), int(pw)


def _grid_map(values: torch.Tensor, grid_hw: Sequence[int], name: str) -> torch.Tensor:
    rows, cols = int(grid_hw[0]), int(grid_hw[1])
    if values.numel() != rows * cols:
        raise ValueError(f"{name} has {values.numel()} patches, grid_hw={tuple(grid_hw)} needs {rows * cols}")
    return values.reshape(rows, cols)  # (rows, cols)


def _component_box(mask: np.ndarray, patch_size, image_hw: Sequence[int] | None) -> np.ndarray:
    """``[x_min p, y_min p, (x_max + 1) p, (y_max + 1) p]`` of a patch mask, clipped to ``image_hw`` if given."""
    ph, pw = _patch(patch_size)
    ys, xs = np.nonzero(mask)
    box = np.array([xs.min() * pw, ys.min() * ph, (xs.max() + 1) * pw, (ys.max() + 1) * ph], dtype=np.int64)
    if image_hw is not None:
        box[2] = min(box[2], int(image_hw[1]))
        box[3] = min(box[3], int(image_hw[0]))
    return box


def lost_seed(keys: torch.Tensor, k_patches: int = 100) -> tuple[int, torch.Tensor, torch.Tensor]:
    """LOST's seed and seed expansion (Simeoni et al., Sec. 3.2, eqs. (1)-(3)).

    ``A = K K^T``; degree ``d_i = #{j != i : A_ij > 0}``; seed ``s = argmin_i d_i``; the ``k_patches``
    lowest-degree patches ``P``; ``M = sum_{i in P, A_si > 0} A_i``. Degree ties keep the lower patch
    index (a stable sort; the reference's unstable ``torch.argsort`` may pick another tied patch).

    Args:
        keys: ``(N, C)`` patch features (the keys of the last attention layer).
        k_patches: ``k``, the number of low-degree patches considered for the expansion.

    Returns:
        ``(seed, degree, M)``: the seed index, ``(N,)`` degrees and the ``(N,)`` expansion scores.
    """
    if keys.ndim != 2:
        raise ValueError(f"keys must be (N, C), got shape {tuple(keys.shape)}")
    similarity = keys @ keys.T  # A: (N, C) x (C, N) -> (N, N)
    positive = similarity.clone()
    positive.fill_diagonal_(0)
    degree = (positive > 0).sum(dim=1)  # (N,)
    order = torch.sort(degree, stable=True).indices  # ascending degree: (N,)
    seed = int(order[0])
    potentials = order[:k_patches]  # (k,)
    similars = potentials[similarity[seed, potentials] > 0]  # the seed itself is included: A_ss = |k_s|^2
    expansion = similarity[similars].sum(dim=0)  # M: (N,)
    return seed, degree, expansion


def lost(keys, grid_hw: Sequence[int], patch_size, image_hw: Sequence[int], k_patches: int = 100) -> np.ndarray:
    """LOST box: the 4-connected component of ``M > 0`` containing the seed (``detect_box``).

    Args:
        keys: ``(N, C)`` keys of one image's patches in raster order (CLS dropped); a ViT baseline's
            last-block keys with all heads concatenated, or SimPool's ``K = W_K LN(X)``.
        grid_hw: ``(rows, cols)`` of the patch grid, ``rows * cols = N``.
        patch_size: pixels per patch (int or ``(ph, pw)``).
        image_hw: ``(H, W)`` of the unpadded image; the box is clipped to it.
        k_patches: ``k`` of the seed expansion (100 in the paper).

    Returns:
        ``[x0, y0, x1, y1]`` int64 pixels.
    """
    keys = torch.as_tensor(keys)
    seed, _, expansion = lost_seed(keys, k_patches)
    scores = _grid_map(expansion, grid_hw, "keys").float().cpu().numpy()  # (rows, cols)
    labels, _ = scipy.ndimage.label(scores > 0.0)  # 4-connectivity: (rows, cols)
    component = labels.flat[seed]
    if component == 0:
        raise ValueError("LOST: the seed is in the background of M > 0 (all keys zero?)")
    return _component_box(labels == component, patch_size, image_hw)


def keep_mass(attention: torch.Tensor, threshold: float = 0.6) -> torch.Tensor:
    """DINO's mask keeping ``threshold`` of the attention mass: the largest values whose sum reaches it.

    Sorted ascending and normalised, ``c_j = sum_{i <= j} a_(i)``; patch ``(j)`` is kept iff
    ``c_j > 1 - threshold`` (Caron et al., ICCV 2021, ``visualize_attention.py``). ``(N,) -> (N,)`` bool.
    """
    values, order = torch.sort(attention.flatten(), stable=True)  # ascending: (N,)
    values = values / values.sum()
    kept_sorted = torch.cumsum(values, dim=0) > (1 - threshold)  # (N,)
    kept = torch.empty_like(kept_sorted)
    kept[order] = kept_sorted  # back to raster order
    return kept


def dino_seg(
    attention,
    grid_hw: Sequence[int],
    patch_size,
    image_hw: Sequence[int],
    threshold: float = 0.6,
    reference_quirk: bool = False,
) -> np.ndarray:
    """DINO-seg box: the biggest 4-connected component of the mask keeping ``threshold`` of the mass.

    Args:
        attention: ``(N,)`` or ``(rows, cols)`` attention of one head (CLS to patches; head 4 in the
            paper) or SimPool's ``a``.
        grid_hw: ``(rows, cols)`` of the patch grid.
        patch_size: pixels per patch (int or ``(ph, pw)``).
        image_hw: ``(H, W)`` of the unpadded image.
        threshold: the mass kept (0.6, DINO's ``official_th``).
        reference_quirk: reproduce LOST's ``dino_seg`` exactly, for its published numbers: component
            sizes are listed for labels ``0 .. n-1`` and the biggest of ``1 .. n-1`` is chosen, so the
            last-labelled component is never chosen and a single component selects the background
            (label 0); the box is not clipped to the image. False (default): the biggest of all
            components ``1 .. n`` (the lowest label on ties), box clipped to ``image_hw``.

    Returns:
        ``[x0, y0, x1, y1]`` int64 pixels.
    """
    attention = torch.as_tensor(attention)
    mask = _grid_map(keep_mass(attention, threshold), grid_hw, "attention").cpu().numpy()  # (rows, cols)
    labels, count = scipy.ndimage.label(mask)  # 4-connectivity
    if reference_quirk:
        sizes = [int(np.sum(labels == label)) for label in range(count)]  # omits the last label
        chosen = int(np.argmax(sizes[1:])) + 1 if len(sizes) > 1 else 0
        if not (labels == chosen).any():
            raise ValueError("DINO-seg (reference_quirk): the chosen component is empty (the reference crashes)")
        return _component_box(labels == chosen, patch_size, None)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]  # labels 1..n: (n,)
    return _component_box(labels == int(np.argmax(sizes)) + 1, patch_size, image_hw)


def box_iou_lost(box, boxes) -> torch.Tensor:
    """IoU of one box with ``(G, 4)`` boxes as LOST's ``bbox_iou`` (YOLOv5): continuous, no +1, eps 1e-7.

    ``inter = clamp(min x1 - max x0) clamp(min y1 - max y0)``, ``union = w1 (h1 + eps) + w2 (h2 + eps) -
    inter + eps``; integer boxes are promoted to float32 exactly as the reference's tensors are.
    """
    eps = 1e-7
    box1 = torch.as_tensor(np.asarray(box))
    box2 = torch.as_tensor(np.asarray(boxes)).reshape(-1, 4).T  # (4, G)
    inter = (torch.min(box1[2], box2[2]) - torch.max(box1[0], box2[0])).clamp(0) * (
        torch.min(box1[3], box2[3]) - torch.max(box1[1], box2[1])
    ).clamp(0)  # (G,)
    w1, h1 = box1[2] - box1[0], box1[3] - box1[1] + eps
    w2, h2 = box2[2] - box2[0], box2[3] - box2[1] + eps
    union = w1 * h1 + w2 * h2 - inter + eps
    return inter / union  # (G,)


def corloc_flags(pred_boxes, gt_boxes: Sequence) -> np.ndarray:
    """Per image, whether the predicted box has IoU >= 0.5 with any ground-truth box ``(N,)`` bool.

    An image without ground-truth boxes (e.g. COCO images with only crowd boxes) counts as wrong.
    """
    pred_boxes = list(pred_boxes)
    if len(pred_boxes) != len(gt_boxes):
        raise ValueError(f"{len(pred_boxes)} predicted boxes for {len(gt_boxes)} images")
    flags = np.zeros(len(pred_boxes), dtype=bool)
    for index, (pred, gts) in enumerate(zip(pred_boxes, gt_boxes, strict=True)):
        if len(gts) == 0:
            continue
        flags[index] = bool(torch.any(box_iou_lost(pred, gts) >= 0.5))
    return flags


def corloc(pred_boxes, gt_boxes: Sequence) -> float:
    """CorLoc in percent: ``100 * #{images whose box has IoU >= 0.5 with any GT box} / #images`` (LOST)."""
    flags = corloc_flags(pred_boxes, gt_boxes)
    if len(flags) == 0:
        raise ValueError("corloc of zero images")
    return float(100.0 * flags.sum() / len(flags))


# ----------------------------------------------------------------------------------------------------------------------
# The protocol on a model: VOC07/VOC12/COCO20k images, one box each
# ----------------------------------------------------------------------------------------------------------------------


def discovery_items(
    dataset: str,
    root: str | os.PathLike,
    image_set: str = "trainval",
    remove_hards: bool = False,
    coco_list: str | os.PathLike | None = None,
    coco_instances: str | os.PathLike | None = None,
) -> list[tuple[str, Path, np.ndarray]]:
    """``(name, image path, (G, 4) boxes)`` per image of ``dataset`` (``voc07``, ``voc12``, ``coco20k``).

    VOC: ``root`` holds ``VOCdevkit/``; images left without boxes by ``remove_hards`` are skipped (as LOST).
    COCO20k: ``root`` holds ``train2014/``, with the image list and the instances file.
    """
    if dataset == "coco20k":
        from ..data.coco import read_coco20k

        if not coco_list or not coco_instances:
            raise ValueError("--dataset coco20k needs --coco-list and --coco-instances")
        return [(i.name, Path(root) / i.file_name, i.boxes) for i in read_coco20k(coco_list, coco_instances)]
    from ..data.voc import read_voc_annotation, voc_dir, voc_image_ids

    years = {"voc07": "2007", "voc12": "2012"}
    if dataset not in years:
        raise ValueError(f"unknown dataset {dataset!r}; valid: {sorted([*years, 'coco20k'])}")
    folder = voc_dir(root, years[dataset])
    items = []
    for image_id in voc_image_ids(root, years[dataset], image_set):
        annotation = read_voc_annotation(folder / "Annotations" / f"{image_id}.xml", remove_hards=remove_hards)
        if remove_hards and len(annotation.boxes) == 0:
            continue  # as LOST: not counted
        items.append((annotation.name, folder / "JPEGImages" / f"{image_id}.jpg", annotation.boxes))
    return items


def patch_size_of(model: nn.Module) -> int:
    """Pixels per grid cell: a ViT's patch size, a CNN's total stride."""
    if hasattr(model, "patch_embed"):
        return int(model.patch_embed.patch_size[0])
    return int(model.feature_info[-1]["reduction"])


def cls_vit_keys(model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """Keys of the last attention layer, all heads concatenated, prefix tokens dropped ``(N, C)`` (LOST)."""
    if not getattr(model, "has_class_token", False):
        raise ValueError(f"{type(model).__name__} has no CLS token; use --source pool")
    captured = {}
    handle = model.blocks[-1].attn.qkv.register_forward_hook(lambda m, i, out: captured.setdefault("qkv", out))
    try:
        model.forward_features(image)
    finally:
        handle.remove()
    qkv = captured["qkv"]  # (1, T, 3C)
    B, T, C3 = qkv.shape
    heads = model.blocks[-1].attn.num_heads
    qkv = qkv.reshape(B, T, 3, heads, C3 // 3 // heads).permute(2, 0, 3, 1, 4)  # (3, B, heads, T, D)
    keys = qkv[1].transpose(1, 2).reshape(B, T, -1)  # (B, T, C)
    return keys[0, model.num_prefix_tokens :]  # (N, C)


def resolve_source(model: nn.Module, source: str) -> str:
    """``"auto"``: the pool when the model has one with attention, else the CLS token's (``"cls"``)."""
    from ..models import pool_slot

    return source if source != "auto" else ("pool" if pool_slot(model) is not None else "cls")


@torch.no_grad()
def predict_box(
    model: nn.Module,
    image: torch.Tensor,
    image_hw: tuple[int, int],
    method: str = "lost",
    source: str = "auto",
    head: int = 4,
    k_patches: int = 100,
    threshold: float = 0.6,
    reference_quirk: bool = False,
) -> np.ndarray:
    """One box for one padded image ``(1, 3, H', W')`` whose unpadded size is ``image_hw``.

    Args:
        method: ``"lost"`` (:func:`lost`) or ``"dino_seg"`` (:func:`dino_seg`).
        source: LOST's keys: ``"pool"`` (SimPool's ``K = W_K LN(X)``) or ``"cls"`` (the last block's keys);
            DINO-seg's map: ``"pool"`` or ``"cls_head"`` (head ``head`` of the last block's CLS attention);
            ``"auto"``: the pool when it has attention, else the CLS token's.
    """
    from ..models import attention_maps, pool_input, pool_slot

    p = patch_size_of(model)
    source = resolve_source(model, source)
    if method == "lost":
        if source == "pool":
            x = pool_input(model, image)
            grid = x.shape[-2:] if x.ndim == 4 else model.patch_embed.dynamic_feat_size(tuple(image.shape[-2:]))
            keys = pool_slot(model).pool.keys(x)[0]  # K = W_K LN(X): (N, C)
        elif source == "cls":
            keys = cls_vit_keys(model, image)  # (N, C)
            grid = model.patch_embed.dynamic_feat_size(tuple(image.shape[-2:]))
        else:
            raise ValueError(f"LOST takes keys from --source pool or cls, not {source!r}")
        return lost(keys.float(), tuple(grid), p, image_hw, k_patches)
    if source == "cls":
        source = "cls_head"
    if source == "cls_head":
        check_head(model, head)
    attention = attention_maps(model, image, source=source, head=head if source == "cls_head" else None)
    grid = tuple(attention.shape[-2:])  # (rows, cols)
    return dino_seg(attention[0].float(), grid, p, image_hw, threshold, reference_quirk)


def check_head(model: nn.Module, head: int) -> None:
    """``head`` must index a head of the model's last block."""
    heads = model.blocks[-1].attn.num_heads if hasattr(model, "blocks") else 0
    if not 0 <= head < heads:
        raise ValueError(f"--head {head} is not a head of {type(model).__name__} (it has {heads})")


@torch.no_grad()
def head_boxes(
    model: nn.Module,
    image: torch.Tensor,
    image_hw: tuple[int, int],
    threshold: float = 0.6,
    reference_quirk: bool = False,
) -> np.ndarray:
    """The DINO-seg box of every head of the last block's CLS attention, then of their mean (the map
    ``attention_maps(..., source="cls")`` gives), for one padded image ``(1, 3, H', W')``: ``(heads + 1, 4)``."""
    from ..models.attention import cls_attention_all

    maps = cls_attention_all(model, image)[0, -1].float()  # the last block: (heads, h, w)
    grid, p = tuple(maps.shape[-2:]), patch_size_of(model)
    candidates = [*maps, maps.mean(dim=0)]  # each head, then the mean over heads: heads + 1 maps (h, w)
    return np.stack([dino_seg(m, grid, p, image_hw, threshold, reference_quirk) for m in candidates])


def head_corlocs(boxes: Sequence[np.ndarray], gt_boxes: Sequence) -> dict:
    """CorLoc of each head and of the mean map from :func:`head_boxes` (one ``(heads + 1, 4)`` array per image):
    ``{"per_head_CorLoc": [%, ...], "best_head", "best_head_CorLoc", "mean_heads_CorLoc"}``. The best head is the
    one of highest CorLoc on these very images (the first of equals), as the paper picks DINO-seg's head."""
    boxes = np.asarray(boxes)  # (N, heads + 1, 4)
    scores = [corloc(boxes[:, column], gt_boxes) for column in range(boxes.shape[1])]
    best = int(np.argmax(scores[:-1]))
    return {
        "per_head_CorLoc": scores[:-1],
        "best_head": best,
        "best_head_CorLoc": scores[best],
        "mean_heads_CorLoc": scores[-1],
    }


def padded_image(path: str | os.PathLike, patch_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """An image normalised (ImageNet) and zero-padded at the bottom/right to a multiple of ``patch_size``:
    ``((3, H', W'), (H, W))``."""
    from torchvision.transforms import functional as TF

    from ..data.folders import load_rgb
    from .features import IMAGENET_MEAN, IMAGENET_STD

    image = TF.normalize(TF.to_tensor(load_rgb(path)), IMAGENET_MEAN, IMAGENET_STD)  # (3, H, W)
    H, W = image.shape[-2:]
    padded = torch.zeros(3, math.ceil(H / patch_size) * patch_size, math.ceil(W / patch_size) * patch_size)
    padded[:, :H, :W] = image  # zeros after normalisation
    return padded, (H, W)


def discover(
    model: nn.Module,
    items: Sequence[tuple[str, str | os.PathLike, np.ndarray]],
    method: str = "lost",
    source: str = "auto",
    head: int = 4,
    k_patches: int = 100,
    threshold: float = 0.6,
    reference_quirk: bool = False,
    progress: bool = True,
) -> tuple[dict[str, list[float]], dict]:
    """One box per image of ``items`` (:func:`discovery_items`) by :func:`predict_box`, and their CorLoc.

    Each image is normalised (ImageNet), then zero-padded at the bottom/right to a multiple of the patch size
    (:func:`padded_image`). The model runs on the device of its parameters. DINO-seg on a CLS token's attention
    (``source`` ``"cls"``, ``"cls_head"``, or ``"auto"`` without a pool) scores every head of the last block and
    their mean map too (:func:`head_boxes`, :func:`head_corlocs`); the boxes are head ``head``'s.

    Returns:
        ``({name: [x0, y0, x1, y1]}, {"CorLoc": %, "correct", "images"})``, the scores with
        ``per_head_CorLoc``, ``best_head``, ``best_head_CorLoc`` and ``mean_heads_CorLoc`` when every head is scored.
    """
    from tqdm import tqdm

    if not items:
        raise ValueError("no images to evaluate")
    device = next(model.parameters()).device
    p = patch_size_of(model)
    every_head = method == "dino_seg" and resolve_source(model, source) in ("cls", "cls_head")
    if every_head:
        check_head(model, head)
    boxes, candidates, gts = {}, [], []
    for name, path, gt in tqdm(items, desc=method, disable=not progress):
        padded, image_hw = padded_image(path, p)
        if every_head:
            candidates.append(head_boxes(model, padded[None].to(device), image_hw, threshold, reference_quirk))
            box = candidates[-1][head]
        else:
            options = (method, source, head, k_patches, threshold, reference_quirk)
            box = predict_box(model, padded[None].to(device), image_hw, *options)
        boxes[name] = box.tolist()
        gts.append(gt)
    flags = corloc_flags(list(boxes.values()), gts)
    score = {"CorLoc": float(100.0 * flags.sum() / len(flags)), "correct": int(flags.sum()), "images": len(flags)}
    return boxes, {**score, **(head_corlocs(candidates, gts) if every_head else {})}
