"""Masks keeping a share of the attention mass (DINO's rule, paper Figure C3)."""

from __future__ import annotations

import numpy as np
import torch

from .overlay import to_rgb, upsample_map

# Two cumulative sums that are equal on paper may differ in the last bits in floating point.
MASS_TOLERANCE = 1e-12


def mass_mask(attention: torch.Tensor | np.ndarray, mass: float = 0.6) -> torch.Tensor | np.ndarray:
    """The smallest set of top-attended locations holding at least ``mass`` of the attention.

    DINO's rule (Caron et al., ICCV 2021, ``visualize_attention.py``; SimPool Figure C3): with
    ``p = a / sum(a)`` sorted in decreasing order, location ``i`` is kept when the mass strictly above
    it is below ``mass``:  ``sum_{j < i} p_(j) < mass``. The location where the cumulative sum crosses
    ``mass`` (the boundary one) is therefore included. Ties with the boundary value are all kept, so
    the mask never depends on the order of locations (a constant map keeps everything).

    Args:
        attention: non-negative map ``(h, w)`` or batch of maps ``(B, h, w)``; any scale.
        mass: share of the attention mass to keep, in ``(0, 1]``.

    Returns:
        Boolean mask of the input's shape and kind (tensor on the input's device, or numpy array).

    Raises:
        ValueError: ``mass`` out of range, a map with negative entries or zero total mass.
    """
    if not 0.0 < mass <= 1.0:
        raise ValueError(f"mass must be in (0, 1], got {mass}")
    is_numpy = not torch.is_tensor(attention)
    a = torch.as_tensor(np.asarray(attention) if is_numpy else attention).to(torch.float64)
    if a.ndim not in (2, 3):
        raise ValueError(f"attention must be (h, w) or (B, h, w), got shape {tuple(a.shape)}")
    flat = a.reshape(-1, a.shape[-2] * a.shape[-1])  # (B, h*w)
    if (flat < 0).any():
        raise ValueError("attention has negative entries; mass_mask needs a non-negative map")
    total = flat.sum(dim=1, keepdim=True)  # (B, 1)
    if (total <= 0).any():
        raise ValueError("attention has zero total mass")
    p = flat / total  # (B, h*w)
    sorted_p = p.sort(dim=1, descending=True).values  # (B, h*w)
    above = sorted_p.cumsum(dim=1) - sorted_p  # mass strictly above each sorted location: (B, h*w)
    kept = above < mass - MASS_TOLERANCE  # (B, h*w); the first location is always kept
    boundary = torch.where(kept, sorted_p, torch.full_like(sorted_p, float("inf"))).amin(dim=1)  # (B,)
    mask = (p >= boundary[:, None]).reshape(a.shape)  # (B, h, w) or (h, w)
    return mask.cpu().numpy() if is_numpy else mask


def overlay_mask(image, mask, color=(0.0, 0.9, 1.0), alpha: float = 0.5, nearest: bool = True) -> np.ndarray:
    """Tint the masked pixels of ``image`` (Figure C3); the rest is darkened.

    Args:
        image: ``(H, W)``, ``(H, W, 3)`` or ``(3, H, W)``, floats in [0, 1] or uint8.
        mask: boolean ``(h, w)`` on the feature grid; upsampled to the image, nearest-neighbour as in
            DINO (``nearest=True``), or bilinear and thresholded at 1/2.
        color: RGB in [0, 1] of the tint.
        alpha: weight of the tint inside the mask.

    Returns:
        ``(H, W, 3)`` floats in [0, 1].
    """
    img = to_rgb(image)
    H, W = img.shape[:2]
    m = torch.as_tensor(np.asarray(mask.cpu() if torch.is_tensor(mask) else mask, dtype=np.float32))
    if nearest:
        m = torch.nn.functional.interpolate(m[None, None], size=(H, W), mode="nearest")[0, 0].numpy()  # (H, W)
    else:
        m = upsample_map(m, (H, W))
    inside = (m >= 0.5)[..., None]  # (H, W, 1)
    tinted = (1 - alpha) * img + alpha * np.asarray(color, dtype=np.float64)
    return np.where(inside, tinted, 0.35 * img)
