"""PxAP: pixel average precision of score maps against exact masks, threshold-free (wsolevaluation's
``MaskEvaluator``, Choe et al., CVPR 2020).

Every map is resized (bicubic) to its mask's size and min-max normalised, as MaxBoxAccV2 reads maps. Over all
pixels of all images, at each CAM threshold ``tau`` in ``0, w, 2w, ..., 1 - w`` (``w = cam_curve_interval``) and
at 1, 2 (the reference's two extra bin edges), a pixel is predicted foreground when its score is ``>= tau``::

    precision(tau) = TP(tau) / (TP(tau) + FP(tau)),   recall(tau) = TP(tau) / #mask pixels,
    PxAP = 100 * sum_i precision(tau_i) * (recall(tau_i) - recall(tau_{i+1}))

from the highest threshold down, over the thresholds that predict at least one pixel. The counts come, as in
the reference, from score histograms with bins ``[0, w), [w, 2w), ..., [1 - w, 1), [1, 2), [2, 3]``, so a
score of exactly 1 falls in ``[1, 2)`` and is counted at ``tau = 1`` (and NumPy's last bin is closed).
A map that ignores the image scores the share of mask pixels among all pixels, or about it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .scoremaps import cam_thresholds, check_scoremap, normalize_scoremap, resize_scoremap


def score_histograms(
    scoremaps: Sequence[np.ndarray], masks: Sequence[np.ndarray], cam_curve_interval: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """Histograms ``(bins,)`` of the normalised scores at mask pixels and at background pixels, summed over images.

    Args:
        scoremaps: one ``(h, w)`` map per image, any scale (torch or numpy).
        masks: one ``(H, W)`` 0/1 mask per image; the map is resized to it. Pixels of value 255 (an ignore
            region, as wsolevaluation's ``get_mask`` marks OpenImages') count neither as object nor background.
        cam_curve_interval: the threshold step ``w``.
    """
    if len(scoremaps) != len(masks):
        raise ValueError(f"{len(scoremaps)} score maps for {len(masks)} masks")
    edges = np.append(cam_thresholds(cam_curve_interval), [1.0, 2.0, 3.0])  # (bins + 1,) right edges
    inside = np.zeros(len(edges) - 1)
    outside = np.zeros(len(edges) - 1)
    for index, (scoremap, mask) in enumerate(zip(scoremaps, masks, strict=True)):
        mask = np.asarray(mask)
        if mask.ndim != 2 or not np.isin(mask, (0, 1, 255)).all():  # 255: ignored (wsolevaluation's get_mask)
            raise ValueError(f"mask {index} must be a 2-D array of 0 and 1 (255: ignored), got shape {mask.shape}")
        if hasattr(scoremap, "detach"):
            scoremap = scoremap.detach().cpu().double().numpy()
        scores = normalize_scoremap(resize_scoremap(scoremap, mask.shape))  # (H, W) in [0, 1]
        check_scoremap(scores, f"score map {index}")
        inside += np.histogram(scores[mask == 1], bins=edges)[0]
        outside += np.histogram(scores[mask == 0], bins=edges)[0]
    return inside, outside


def average_precision(inside: np.ndarray, outside: np.ndarray) -> float:
    """PxAP (percent) from the two score histograms of :func:`score_histograms` (the reference's ``compute``)."""
    true_positives = inside[::-1].cumsum()  # predicted foreground at thresholds from the highest down
    false_positives = outside[::-1].cumsum()
    if inside.sum() <= 0:
        raise ValueError("pxap: no mask has a foreground pixel")
    predicted = true_positives + false_positives
    counted = predicted != 0
    precision = np.divide(true_positives, predicted, out=np.zeros_like(true_positives), where=counted)
    recall = true_positives / inside.sum()
    return float(100.0 * (precision[1:] * np.diff(recall))[counted[1:]].sum())


def pxap(scoremaps: Sequence[np.ndarray], masks: Sequence[np.ndarray], cam_curve_interval: float = 0.01) -> float:
    """Pixel average precision (percent) of ``scoremaps`` against ``masks``: see the module docstring.

    Args:
        scoremaps: ``(N, h, w)`` maps or a list of ``(h, w)`` maps (numpy or torch), any scale.
        masks: ``(N, H, W)`` or a list of ``(H, W)`` 0/1 masks; each map is resized to its mask.
        cam_curve_interval: threshold step (0.01: wsolevaluation's default).

    Raises:
        ValueError: a mask that is not 0/1, a different number of maps and masks, or no foreground pixel at all.
    """
    return average_precision(*score_histograms(scoremaps, masks, cam_curve_interval))
