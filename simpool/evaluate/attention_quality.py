"""How well an attention map covers the object: MaxBoxAccV2 against boxes and the attention mass in its mask.

- ``mask_mass``: the share of the attention inside the object's mask, ``sum_p m_p A_p / sum_p A_p`` averaged
  over images (a uniform map scores the mean mask area; a map entirely on the object scores 1);
- MaxBoxAccV2: :func:`simpool.evaluate.localization.max_box_acc_v2` (wsolevaluation's protocol).

``attention_quality`` scores a set of low-resolution maps ``(N, h, w)`` with both: each map is upsampled
bilinearly to its mask's size for the mass, and goes the reference's own route (bicubic to 224, min-max) for
the boxes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .localization import max_box_acc_v2


def mask_mass(maps: np.ndarray, masks: np.ndarray) -> float:
    """Mean over images of ``sum_p m_p A_p / sum_p A_p``; ``maps`` and ``masks`` ``(N, H, W)``, negative
    attention clipped to 0."""
    maps = np.clip(np.asarray(maps, dtype=np.float64), 0, None)
    masks = np.asarray(masks, dtype=np.float64)
    if maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} differ in shape")
    return float(((maps * masks).sum((1, 2)) / np.maximum(maps.sum((1, 2)), 1e-12)).mean())


def upsample(maps: np.ndarray | torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """``(N, h, w)`` maps to ``(N, H, W)``, bilinear."""
    maps = torch.as_tensor(np.asarray(maps, dtype=np.float32))[:, None]  # (N, 1, h, w)
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)[:, 0].numpy()  # (N, H, W)


def attention_quality(
    maps: np.ndarray,
    boxes: Sequence[np.ndarray] | None = None,
    image_sizes: Sequence[tuple[int, int]] | None = None,
    masks: np.ndarray | None = None,
    cam_curve_interval: float = 0.01,
) -> dict[str, float]:
    """``{"MaxBoxAccV2", "BoxAcc@50"}`` (percent) with ``boxes`` (per image ``(G, 4)`` in pixels of its
    ``(W, H)`` size) and ``{"mask_mass", "uniform_mask_mass"}`` (fractions) with ``masks`` ``(N, H, W)``."""
    maps = np.asarray(maps, dtype=np.float64)  # (N, h, w)
    result: dict[str, float] = {}
    if boxes is not None:
        scores = max_box_acc_v2(maps, boxes, image_sizes, cam_curve_interval=cam_curve_interval)
        result.update({"MaxBoxAccV2": scores["MaxBoxAccV2"], "BoxAcc@50": scores["BoxAcc@50"]})
    if masks is not None:
        masks = np.asarray(masks)
        result["mask_mass"] = mask_mass(upsample(maps, masks.shape[-2:]), masks)
        result["uniform_mask_mass"] = float(masks.astype(np.float64).mean())  # what a uniform map scores
    return result


__all__ = ["attention_quality", "mask_mass", "upsample"]
