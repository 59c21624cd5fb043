"""How the demo scores a model: accuracy on the bench's variants and its attention's quality, for the final
evaluation and for every point of the training curves alike.

The curves are measured on the validation split (``CURVE_SPLIT``), whatever ``eval_split`` is: what the report
chooses from them (the matched-accuracy checkpoints) is chosen on validation, and only then scored on
``eval_split``."""

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
CURVE_SPLIT = "val"  # the curves' split: choices made from them never see the test split
CURVE_KEYS = {  # curve point key: evaluate_model key
    "top1_original": "acc_original",
    "top1_mixed_rand": "acc_mixed_rand",
    "MaxBoxAccV2": "MaxBoxAccV2",
    "PxAP": "PxAP",
    "mask_mass": "mask_mass",
}
ATTENTION_KEYS = ("MaxBoxAccV2", "BoxAcc@50", "PxAP", "CorLoc", "mask_mass")  # a map's scores, model's or baseline's


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


def ground_truth(boxes: np.ndarray, masks: np.ndarray) -> tuple[list, list]:
    """One box ``(N, 4)`` and mask ``(N, S, S)`` per image as the scorers read them: box lists ``[[box]]`` and
    image sizes ``(W, H)``."""
    return [[box.tolist()] for box in boxes], [masks.shape[:0:-1]] * len(masks)


def attention_scores(out: dict, patch_size: int) -> dict:
    """MaxBoxAccV2, BoxAcc@50, CorLoc, PxAP (percent), the mask mass and a uniform map's (fractions) of the maps
    ``(N, h, w)`` of :func:`predict`'s ``out`` against its boxes and masks ``(N, S, S)``
    (:func:`simpool.evaluate.attention_quality.attention_quality`)."""
    boxes, sizes = ground_truth(out["boxes"], out["masks"])
    return attention_quality(out["maps"], boxes, sizes, out["masks"], patch_size=patch_size)


def eval_datasets(
    config: DemoConfig, split: str, variants: tuple[str, ...] = EVAL_VARIANTS, num_images: int | None = None
) -> dict:
    """The first ``num_images`` (default ``config.eval_images``) images of ``split`` in each of ``variants``, rendered
    once (:meth:`~simpool.data.bench.SimPoolBench.rendered`): every model scored on them reads the same images."""
    count = num_images or config.eval_images
    return {variant: SimPoolBench(split, variant, config.bench(), num_images=count).rendered() for variant in variants}


def score_model(kind: str, model, config: DemoConfig, device, datasets: dict, progress: bool = True) -> tuple:
    """Accuracy on each variant of ``datasets`` (``{variant: images}``; ``original`` needed), BG-gap when they hold
    both mixed ones, and the localization metrics of the attention on ``original`` (:func:`attention_scores`).

    Returns:
        ``(result, outputs)``: the scores, and :func:`predict`'s outputs on ``original`` (its maps ``(N, h, w)``).
    """
    if "original" not in datasets:
        raise ValueError(f"variants must include 'original' (the attention is scored there), got {tuple(datasets)}")
    source = MODELS[kind][1]
    result, outputs = {}, None
    for variant, data in tqdm(datasets.items(), desc=f"eval {kind}", disable=not progress):
        out = predict(model, data, device, source if variant == "original" else None)
        result[f"acc_{variant}"] = float((out["pred"] == out["labels"]).mean())
        outputs = out if variant == "original" else outputs
    if {"mixed_same", "mixed_rand"} <= set(datasets):
        result["bg_gap"] = result["acc_mixed_same"] - result["acc_mixed_rand"]
    scores = attention_scores(outputs, config.patch_size)
    uniform = scores.pop("uniform_mask_mass")  # what a uniform map scores: the mean mask area
    result.update(scores)
    if "mixed_rand" in datasets:
        result["learned_object"] = result["acc_mixed_rand"] >= GATE
    result["uniform_mask_mass"] = uniform
    return result, outputs


def evaluate_model(
    kind: str,
    model,
    config: DemoConfig,
    device,
    progress: bool = True,
    variants: tuple[str, ...] = EVAL_VARIANTS,
    num_images: int | None = None,
    datasets: dict | None = None,
    split: str | None = None,
) -> dict:
    """:func:`score_model`'s scores on ``variants`` over the first ``num_images`` (default ``config.eval_images``)
    images of ``split`` (default ``config.eval_split``); ``datasets``: those images already rendered, by variant."""
    if "original" not in variants:
        raise ValueError(f"variants must include 'original' (the attention is scored there), got {variants}")
    datasets = datasets or {}
    missing = tuple(variant for variant in variants if variant not in datasets)
    rendered = eval_datasets(config, split or config.eval_split, missing, num_images) if missing else {}
    chosen = {variant: datasets.get(variant, rendered.get(variant)) for variant in variants}
    return score_model(kind, model, config, device, chosen, progress)[0]


def curve_steps(steps: int, points: int) -> list[int]:
    """The updates after which the curves are measured: 0 (the initialisation) and ``points`` evenly spaced
    updates ending at ``steps`` (fewer when ``steps < points``); none when ``points`` is 0."""
    if points <= 0:
        return []
    return sorted({round(k * steps / points) for k in range(points + 1)})


def curve_point(kind: str, model, config: DemoConfig, device, step: int, datasets: dict | None = None) -> dict:
    """One point of a curve: :func:`evaluate_model` on the first ``config.curve_images`` images of
    ``CURVE_VARIANTS`` of ``CURVE_SPLIT`` (``datasets``: those images rendered once, by variant), after ``step``
    updates (``epoch``: passes over the training images so far)."""
    scored = evaluate_model(
        kind, model, config, device, False, CURVE_VARIANTS, config.curve_images, datasets, CURVE_SPLIT
    )
    point = {"step": step, "epoch": step * config.batch_size / config.train_images}
    return {**point, **{key: scored[name] for key, name in CURVE_KEYS.items()}}
