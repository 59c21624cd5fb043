"""Maps that ignore the image, scored like any model's attention: what position alone explains.

A score of an attention map means little without these beside it. On a dataset whose objects sit in the middle,
a centred Gaussian finds them as well as a model does; a model's own mean map, used for every image, shows how
much of its score comes from where it looks on average rather than from what it sees.

- :func:`uniform`: near-uniform maps, ``1 + 1e-6 * noise`` (seeded): an exactly constant map ranks nothing and is
  left unscored;
- :func:`centre`: a centred Gaussian of standard deviation ``sigma`` (a fraction of each side);
- :func:`box_prior`: the mean of the training split's masks (or of its boxes' filled rectangles) on the map's grid;
- :func:`mean_map`: a model's maps averaged over the evaluation split, one map for every image.

Each returns ``(N, h, w)`` float32 maps on the models' grid, ready for
:func:`simpool.evaluate.attention_quality.attention_quality`; the model at initialisation is scored by running it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

FIXED = ("uniform", "centre", "box_prior")  # the maps that ignore the image and need no model
NOISE = 1e-6  # the uniform map's relative noise: breaks ties, far below any model's contrast


def _repeat(one: np.ndarray, count: int) -> np.ndarray:
    return np.repeat(one[None].astype(np.float32), count, axis=0)  # (N, h, w)


def uniform(count: int, grid: tuple[int, int], seed: int = 0) -> np.ndarray:
    """``count`` near-uniform ``grid`` maps: ``1 + NOISE * u``, ``u ~ U[0, 1)`` from ``seed``."""
    rng = np.random.default_rng(seed)
    return (1.0 + NOISE * rng.random((count, *grid))).astype(np.float32)  # (N, h, w)


def centre(count: int, grid: tuple[int, int], sigma: float = 0.25) -> np.ndarray:
    """``count`` copies of a Gaussian centred on the ``grid``, of standard deviation ``sigma`` x each side (in
    cells); cell centres at ``i + 0.5``."""
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    height, width = grid
    ys = (np.arange(height) + 0.5 - height / 2) / (sigma * height)  # (h,)
    xs = (np.arange(width) + 0.5 - width / 2) / (sigma * width)  # (w,)
    return _repeat(np.exp(-0.5 * (ys[:, None] ** 2 + xs[None, :] ** 2)), count)  # (N, h, w)


def box_prior(
    count: int,
    grid: tuple[int, int],
    masks: np.ndarray | None = None,
    boxes: Sequence[np.ndarray] | None = None,
    image_hw: tuple[int, int] | None = None,
) -> np.ndarray:
    """``count`` copies of the training objects' mean: their masks ``(M, H, W)`` area-averaged to ``grid``, or,
    without masks, their boxes ``(x0, y0, x1, y1)`` (pixels of ``image_hw`` images) filled and averaged."""
    if masks is None:
        if boxes is None or image_hw is None:
            raise ValueError("box_prior needs the training masks, or their boxes and image_hw")
        masks = np.zeros((len(boxes), *image_hw), dtype=np.float32)  # (M, H, W)
        for canvas, image_boxes in zip(masks, boxes, strict=True):
            for x0, y0, x1, y1 in np.asarray(image_boxes, dtype=int).reshape(-1, 4):
                canvas[y0:y1, x0:x1] = 1.0
    masks = torch.as_tensor(np.asarray(masks, dtype=np.float32))[:, None]  # (M, 1, H, W)
    cells = F.adaptive_avg_pool2d(masks, grid)[:, 0]  # (M, h, w): the share of each cell inside the object
    return _repeat(cells.mean(0).numpy(), count)  # (N, h, w)


def mean_map(maps: np.ndarray) -> np.ndarray:
    """The maps' mean over images, each first scaled to sum 1 (so no image weighs more), for every image."""
    maps = np.clip(np.asarray(maps, dtype=np.float64), 0, None)  # (N, h, w)
    sums = np.maximum(maps.sum((1, 2), keepdims=True), 1e-12)
    return _repeat((maps / sums).mean(0), len(maps))  # (N, h, w)


def image_independent(
    count: int,
    grid: tuple[int, int],
    train_masks: np.ndarray,
    seed: int = 0,
    sigma: float = 0.25,
) -> dict[str, np.ndarray]:
    """The three baselines that need no model: ``{"uniform", "centre", "box_prior"}``, each ``(N, h, w)``."""
    return {
        "uniform": uniform(count, grid, seed),
        "centre": centre(count, grid, sigma),
        "box_prior": box_prior(count, grid, masks=train_masks),
    }
