"""How the demo scores a model: accuracy on the bench's variants and its attention's quality, for the final
evaluation and for every point of the training curves alike."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from ...data.bench import SimPoolBench, normalize_images
from ...evaluate.attention_quality import attention_quality
from ...models import attention_maps
from .config import MODELS, DemoConfig

GATE = 0.6  # mixed_rand accuracy both models need before their attention maps are compared
EVAL_VARIANTS = ("original", "mixed_same", "mixed_rand")
CURVE_VARIANTS = ("original", "mixed_rand")
CURVE_KEYS = {  # curve point key: evaluate_model key
    "top1_original": "acc_original",
    "top1_mixed_rand": "acc_mixed_rand",
    "MaxBoxAccV2": "MaxBoxAccV2",
    "mask_mass": "mask_mass",
}


@torch.no_grad()
def predict(model, data: SimPoolBench, device, source: str | None = None, batch_size: int = 250) -> dict:
    """Predictions over a dataset, and attention maps ``(N, h, w)`` when ``source`` is given."""
    model.eval()
    out = {"pred": [], "labels": [], "boxes": [], "masks": [], "maps": []}
    for i in range(0, len(data), batch_size):
        images, labels, boxes, masks = data.batch(np.arange(i, min(i + batch_size, len(data))))
        x = normalize_images(images).to(device)
        out["pred"].append(model(x).argmax(1).cpu())
        out["labels"].append(labels)
        out["boxes"].append(boxes)
        out["masks"].append(masks)
        if source is not None:
            out["maps"].append(attention_maps(model, x, source=source).cpu())
    return {k: torch.cat(v).numpy() for k, v in out.items() if v}


def attention_scores(out: dict, patch_size: int) -> dict:
    """MaxBoxAccV2, BoxAcc@50, CorLoc (percent), the mask mass and a uniform map's (fractions) of the maps
    ``(N, h, w)`` of :func:`predict`'s ``out`` against its boxes and masks ``(N, S, S)``
    (:func:`simpool.evaluate.attention_quality.attention_quality`)."""
    boxes, masks = [[box.tolist()] for box in out["boxes"]], out["masks"]
    return attention_quality(out["maps"], boxes, [masks.shape[:0:-1]] * len(masks), masks, patch_size=patch_size)


def evaluate_model(
    kind: str,
    model,
    config: DemoConfig,
    device,
    progress: bool = True,
    variants: tuple[str, ...] = EVAL_VARIANTS,
    num_images: int | None = None,
    datasets: dict | None = None,
) -> dict:
    """Accuracy on ``variants``, BG-gap (when they hold both mixed ones), and the localization metrics of the
    attention on ``original`` (:func:`attention_scores`), over the first ``num_images`` (default
    ``config.eval_images``) images of ``config.eval_split`` (``datasets``: those images already rendered, by
    variant). The final evaluation and every curve point (:func:`curve_point`) call it."""
    if "original" not in variants:
        raise ValueError(f"variants must include 'original' (the attention is scored there), got {variants}")
    source = MODELS[kind][1]
    result, outputs = {}, None
    for variant in tqdm(variants, desc=f"eval {kind}", disable=not progress):
        if datasets and variant in datasets:
            data = datasets[variant]
        else:
            data = SimPoolBench(config.eval_split, variant, config.bench(), num_images=num_images or config.eval_images)
        out = predict(model, data, device, source if variant == "original" else None)
        result[f"acc_{variant}"] = float((out["pred"] == out["labels"]).mean())
        outputs = out if variant == "original" else outputs
    if {"mixed_same", "mixed_rand"} <= set(variants):
        result["bg_gap"] = result["acc_mixed_same"] - result["acc_mixed_rand"]
    scores = attention_scores(outputs, config.patch_size)
    uniform = scores.pop("uniform_mask_mass")  # what a uniform map scores: the mean mask area
    result.update(scores)
    if "mixed_rand" in variants:
        result["learned_object"] = result["acc_mixed_rand"] >= GATE
    result["uniform_mask_mass"] = uniform
    return result


def curve_steps(steps: int, points: int) -> list[int]:
    """The updates after which the curves are measured: 0 (the initialisation) and ``points`` evenly spaced
    updates ending at ``steps`` (fewer when ``steps < points``); none when ``points`` is 0."""
    if points <= 0:
        return []
    return sorted({round(k * steps / points) for k in range(points + 1)})


def curve_point(kind: str, model, config: DemoConfig, device, step: int, datasets: dict | None = None) -> dict:
    """One point of a curve: :func:`evaluate_model` on the first ``config.curve_images`` images of
    ``CURVE_VARIANTS`` (``datasets``: those images rendered once, by variant), after ``step`` updates
    (``epoch``: passes over the training images so far)."""
    scored = evaluate_model(kind, model, config, device, False, CURVE_VARIANTS, config.curve_images, datasets)
    point = {"step": step, "epoch": step * config.batch_size / config.train_images}
    return {**point, **{key: scored[name] for key, name in CURVE_KEYS.items()}}
