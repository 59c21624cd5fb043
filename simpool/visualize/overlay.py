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
    return F.interpolate(a, size=tuple(size), mode="bilinear", align_corners=False)[0, 0].numpy()  # (H, W)


def to_rgb(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """An image as ``(H, W, 3)`` floats in [0, 1] from ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)``, float or uint8."""
    img = np.asarray(image.detach().cpu() if torch.is_tensor(image) else image)
    is_uint8 = img.dtype == np.uint8
    img = img.astype(np.float64)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = img.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if is_uint8 or img.max() > 1.0:
        img = img / 255.0
    if img.ndim == 2:
        img = img[..., None]  # (H, W, 1)
    if img.ndim != 3 or img.shape[-1] not in (1, 3):
        raise ValueError(f"image must be (H, W), (H, W, 1|3) or (1|3, H, W), got shape {img.shape}")
    return np.ascontiguousarray(np.broadcast_to(img, (*img.shape[:2], 3)))  # (H, W, 3)


# The colormap level of a uniform map (GAP's, or any map that ignores the image): its middle colour everywhere. Min-max
# normalisation would make it all zeros, the colormap's darkest colour: a darkened image, read as "looked nowhere".
UNIFORM_LEVEL = 0.5


def is_uniform(attention: torch.Tensor | np.ndarray, rtol: float = 1e-6) -> bool:
    """Whether a map is constant up to rounding: its spread at most ``rtol`` times its largest magnitude."""
    a = np.asarray(attention.detach().cpu() if torch.is_tensor(attention) else attention, dtype=np.float64)
    return bool(np.ptp(a) <= rtol * max(np.abs(a).max(), 1e-12))


def heat(attention: torch.Tensor | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The colormap levels of a map over an image of ``size = (H, W)``: upsampled and min-max normalised to [0, 1];
    a uniform map (:func:`is_uniform`) at :data:`UNIFORM_LEVEL` everywhere."""
    if is_uniform(attention):
        return np.full(tuple(size), UNIFORM_LEVEL)  # (H, W)
    return normalize_map(upsample_map(attention, size))  # (H, W)


def add_colorbar(figure, axes, cmap: str = "inferno") -> None:
    """One colour bar beside a grid of :func:`overlay` pictures: the colormap from each map's minimum to its
    maximum, the level of a uniform map marked between them."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    mappable = ScalarMappable(Normalize(0.0, 1.0), cmap)
    bar = figure.colorbar(mappable, ax=np.asarray(axes).ravel().tolist(), fraction=0.04, pad=0.02)
    bar.set_ticks([0.0, UNIFORM_LEVEL, 1.0])
    bar.set_ticklabels(["map min", "uniform map", "map max"], fontsize=6)
    bar.set_label("attention (per map)", fontsize=7)


def overlay(image: np.ndarray | torch.Tensor, attention, alpha: float = 0.5, cmap: str = "inferno") -> np.ndarray:
    """Blend an attention map over an image.

    ``out = (1 - alpha) * image + alpha * cmap(heat(attention))``: the map is bilinearly upsampled to the
    image, min-max normalised (:func:`heat`; a uniform map is drawn uniform, at the colormap's middle colour, not
    as a darkened image) and colored with a perceptually uniform colormap (``inferno`` by default; ``viridis``,
    ``magma``, ``cividis`` work too). :func:`add_colorbar` draws its scale.

    Args:
        image: ``(H, W)``, ``(H, W, 3)`` or ``(3, H, W)``; floats in [0, 1] or uint8.
        attention: ``(h, w)`` map of any scale; upsampled to the image and min-max normalised.
        alpha: weight of the colored map.
        cmap: a perceptually uniform matplotlib colormap.

    Returns:
        ``(H, W, 3)`` floats in [0, 1].
    """
    import matplotlib

    img = to_rgb(image)
    levels = heat(attention.detach() if torch.is_tensor(attention) else attention, img.shape[:2])  # (H, W)
    colored = matplotlib.colormaps[cmap](levels)[..., :3]  # (H, W, 3)
    return (1 - alpha) * img + alpha * colored
