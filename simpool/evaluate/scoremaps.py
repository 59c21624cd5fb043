"""Score maps as wsolevaluation reads them: the CAM thresholds, min-max normalisation, bicubic resizing, validity.

Shared by MaxBoxAccV2 (:mod:`.localization`) and PxAP (:mod:`.pixel_ap`), so both read a map the same way.
"""

from __future__ import annotations

import cv2
import numpy as np

RESIZE_LENGTH = 224  # wsolevaluation's _RESIZE_LENGTH: maps and ground-truth boxes live at 224x224


def cam_thresholds(cam_curve_interval: float = 0.01) -> np.ndarray:
    """The reference's threshold list ``np.arange(0, 1, cam_curve_interval)`` (0.001 in the paper setting)."""
    if not 0 < cam_curve_interval < 1:
        raise ValueError(f"cam_curve_interval must be in (0, 1), got {cam_curve_interval}")
    return np.arange(0, 1, cam_curve_interval)


def normalize_scoremap(cam: np.ndarray) -> np.ndarray:
    """Min-max scaling to [0, 1] as ``inference.py : normalize_scoremap``; NaN or constant maps become zeros.

    ``s = (c - min c) / max(c - min c)``, in float64 (the reference's ``t2n`` casts to ``np.float``).
    """
    cam = np.array(cam, dtype=np.float64)  # a copy: (H, W)
    if np.isnan(cam).any() or cam.min() == cam.max():
        return np.zeros_like(cam)
    cam -= cam.min()
    cam /= cam.max()
    return cam


def resize_scoremap(cam: np.ndarray, size: int | tuple[int, int] = RESIZE_LENGTH) -> np.ndarray:
    """Bicubic upsampling with OpenCV to ``size x size``, or to ``size = (H, W)`` (``cv2.resize(..., INTER_CUBIC)``
    as the reference)."""
    cam = np.asarray(cam, dtype=np.float64)
    height, width = (size, size) if isinstance(size, int) else size
    if cam.shape == (height, width):
        return cam
    return cv2.resize(cam, (width, height), interpolation=cv2.INTER_CUBIC)  # (H, W)


def prepare_scoremaps(score_maps) -> np.ndarray:
    """Any ``(N, h, w)`` maps (numpy or torch) -> ``(N, 224, 224)`` float64: bicubic resize, then min-max."""
    if hasattr(score_maps, "detach"):
        score_maps = score_maps.detach().cpu().double().numpy()
    maps = np.asarray(score_maps, dtype=np.float64)
    if maps.ndim != 3:
        raise ValueError(f"score_maps must be (N, h, w), got shape {maps.shape}")
    return np.stack([normalize_scoremap(resize_scoremap(cam)) for cam in maps]) if len(maps) else maps


def check_scoremap(scoremap: np.ndarray, name: str = "score map") -> None:
    """The reference's ``check_scoremap_validity``: 2-D, no NaN, values in [0, 1]."""
    if scoremap.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {scoremap.shape}")
    if np.isnan(scoremap).any():
        raise ValueError(f"{name} contains NaN")
    if (scoremap > 1).any() or (scoremap < 0).any():
        raise ValueError(f"{name} has values outside [0, 1]; normalise it (normalize=True)")
