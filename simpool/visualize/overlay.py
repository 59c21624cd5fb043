"""Attention overlays: a map upsampled to the image and blended with a perceptual colormap."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def normalize_map(attention: torch.Tensor | np.ndarray) -> np.ndarray:
    """Min-max normalise a map to [0, 1]; a constant map becomes zeros."""
    a = np.asarray(attention.detach().cpu() if torch.is_tensor(attention) else attention, dtype=np.float64)
    span = a.max() - a.min()
    return (a - a.min()) / span if span > 0 else np.zeros_like(a)


def upsample_map(attention: torch.Tensor | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of an ``(h, w)`` map to ``size = (H, W)`` pixels."""
    a = torch.as_tensor(np.asarray(attention, dtype=np.float32) if not torch.is_tensor(attention) else attention)
    a = a.detach().float().cpu()[None, None]  # (1, 1, h, w)
    return F.interpolate(a, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def overlay(image: np.ndarray | torch.Tensor, attention, alpha: float = 0.5, cmap: str = "inferno") -> np.ndarray:
    """Blend an attention map over an image.

    Args:
        image: ``(H, W)``, ``(H, W, 3)`` or ``(3, H, W)``; floats in [0, 1] or uint8.
        attention: ``(h, w)`` map of any scale; upsampled to the image and min-max normalised.
        alpha: weight of the colored map.
        cmap: a perceptually uniform matplotlib colormap.

    Returns:
        ``(H, W, 3)`` floats in [0, 1].
    """
    import matplotlib

    img = np.asarray(image.detach().cpu() if torch.is_tensor(image) else image, dtype=np.float64)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = img.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if img.max() > 1.0:
        img = img / 255.0
    if img.ndim == 2:
        img = img[..., None]
    img = np.broadcast_to(img, (*img.shape[:2], 3))
    heat = normalize_map(upsample_map(torch.as_tensor(np.asarray(attention, dtype=np.float32)), img.shape[:2]))
    colored = matplotlib.colormaps[cmap](heat)[..., :3]
    return (1 - alpha) * img + alpha * colored
