"""How well an attention map covers the object: boxes from it against the object's box, and its mass in the mask.

- MaxBoxAccV2: :func:`simpool.evaluate.localization.max_box_acc_v2` (wsolevaluation's protocol), with BoxAcc@50;
- CorLoc of DINO-seg boxes (:func:`simpool.evaluate.discovery.dino_seg`: the biggest 4-connected component of
  the patches holding 60% of the attention mass), in percent;
- ``mask_mass``: the share of the attention inside the object's mask, ``sum_p m_p A_p / sum_p A_p`` averaged
  over images (a uniform map scores the mean mask area, ``uniform_mask_mass``; a map entirely on the object
  scores 1).

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

from .discovery import corloc, dino_seg
from .localization import max_box_acc_v2


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
    is given; ``{"mask_mass", "uniform_mask_mass"}`` (fractions) with ``masks`` ``(N, H, W)``."""
    maps = np.asarray(maps)  # (N, h, w), in its own precision (float64 when not floating)
    if not np.issubdtype(maps.dtype, np.floating):
        maps = maps.astype(np.float64)
    result: dict[str, float] = {}
    if boxes is not None:
        scores = max_box_acc_v2(maps, boxes, image_sizes, cam_curve_interval=cam_curve_interval)
        result.update({"MaxBoxAccV2": scores["MaxBoxAccV2"], "BoxAcc@50": scores["BoxAcc@50"]})
        if patch_size is not None:
            result["CorLoc"] = dino_seg_corloc(maps, boxes, image_sizes, patch_size)
    if masks is not None:
        masks = np.asarray(masks)
        result["mask_mass"] = mask_mass(upsample(maps, masks.shape[-2:]), masks)
        result["uniform_mask_mass"] = float(masks.astype(np.float64).mean())  # what a uniform map scores
    return result


__all__ = ["attention_quality", "dino_seg_corloc", "mask_mass", "upsample"]
