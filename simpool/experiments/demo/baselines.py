"""The maps each demo model's attention is compared with, scored on the same images as the model
(``report.json["baselines"]``):

- ``uniform``, ``centre``, ``box_prior``: the maps that ignore the image
  (:func:`~simpool.evaluate.attention_quality.baseline_scores`); the box prior is the mean mask of the first
  ``PRIOR_IMAGES`` images of the training split (those the arms train on first);
- ``init``: each model at initialisation (the arm's ``initial_state``), its attention on the same images;
- ``mean_map``: each model's own maps averaged over the images and used for every one of them
  (:func:`~simpool.evaluate.baselines.mean_map`): what where it looks on average explains.

Each with ``ATTENTION_KEYS`` (MaxBoxAccV2, BoxAcc@50, PxAP, CorLoc, mask mass).
"""

from __future__ import annotations

import numpy as np
import torch

from ...data.bench import SimPoolBench
from ...evaluate.attention_quality import baseline_scores
from ...evaluate.baselines import mean_map
from .config import DemoConfig, bench_vit
from .scoring import ATTENTION_KEYS, attention_scores, ground_truth, score_model

PRIOR_IMAGES = 2000  # training images whose masks make the box prior


def train_masks(config: DemoConfig) -> np.ndarray:
    """The masks ``(M, S, S)`` of the first ``min(PRIOR_IMAGES, train_images)`` training images (``original``)."""
    count = min(PRIOR_IMAGES, config.train_images)
    return SimPoolBench("train", "original", config.bench(), num_images=count).rendered().masks.numpy()


def fixed_baselines(boxes: np.ndarray, masks: np.ndarray, config: DemoConfig, prior: np.ndarray) -> dict:
    """``{"uniform", "centre", "box_prior"}`` scored against one box ``(N, 4)`` and mask ``(N, S, S)`` per image;
    ``prior``: the training masks of the box prior (:func:`train_masks`); the uniform map's noise is seeded by
    ``config.seed``."""
    grid = (config.image_size // config.patch_size,) * 2
    gts, sizes = ground_truth(boxes, masks)
    scored = baseline_scores(grid, prior, gts, sizes, masks, config.patch_size, seed=config.seed)
    return {name: _attention(scores) for name, scores in scored.items()}


def mean_map_scores(outputs: dict, patch_size: int) -> dict:
    """The scores of the mean of :func:`~.scoring.predict`'s maps, used for each of its images."""
    return _attention(attention_scores({**outputs, "maps": mean_map(outputs["maps"])}, patch_size))


def init_scores(kind: str, state: dict, config: DemoConfig, device, original) -> dict:
    """The model of ``kind`` with the weights ``state`` (its initialisation), its attention scored on the rendered
    ``original`` images (and its top-1 there, ``acc_original``)."""
    model = bench_vit(kind, config)
    model.load_state_dict(state)
    result = score_model(kind, model.to(device), config, device, {"original": original}, progress=False)[0]
    return {"acc_original": result["acc_original"], **_attention(result)}


def demo_baselines(
    config: DemoConfig, device: torch.device, original, outputs: dict, initial: dict, prior: np.ndarray
) -> dict:
    """``report.json["baselines"]``: ``uniform``, ``centre``, ``box_prior``, and ``init`` and ``mean_map`` per
    model, on the rendered ``original`` evaluation images.

    Args:
        outputs: each trained model's :func:`~.scoring.predict` outputs on those images.
        initial: each model's state dict at initialisation.
        prior: the training masks of the box prior (:func:`train_masks`).
    """
    first = next(iter(outputs.values()))
    return {
        **fixed_baselines(first["boxes"], first["masks"], config, prior),
        "init": {kind: init_scores(kind, initial[kind], config, device, original) for kind in outputs},
        "mean_map": {kind: mean_map_scores(out, config.patch_size) for kind, out in outputs.items()},
    }


def _attention(scores: dict) -> dict:
    return {key: scores[key] for key in ATTENTION_KEYS}
