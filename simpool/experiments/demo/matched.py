"""Both models at matched accuracy, chosen on validation and only then scored on the evaluation split.

The curves are measured on the validation split, with a checkpoint at every point. :func:`matched_report` takes
the ``mixed_rand`` level that both models reach on them (:func:`~simpool.experiments.bench_report.matched_points`:
the highest level up to the gate that both reach) and each model's first checkpoint at that level; only those two
checkpoints are then evaluated on ``eval_split``: accuracy, attention and their mean maps, as the final models.
"""

from __future__ import annotations

from ...models import load_checkpoint
from ..bench_report import matched_points
from .baselines import mean_map_scores
from .config import DemoConfig, bench_vit
from .scoring import CURVE_SPLIT, GATE, score_model


def checkpoint_scores(kind: str, point: dict, config: DemoConfig, device, datasets: dict, final: dict) -> tuple:
    """``(result, mean_map)``: :func:`~.scoring.score_model`'s result for the checkpoint of the curve ``point`` on
    the rendered ``datasets``, and its mean map's scores; the trained model's (``final[kind]``: ``result``,
    ``mean_map``, ``steps``) when the point is the last update, whose checkpoint is the trained model."""
    if point["step"] == final[kind]["steps"]:
        return final[kind]["result"], final[kind]["mean_map"]
    if "checkpoint" not in point:
        raise ValueError(f"the {kind} curve point of update {point['step']} has no checkpoint to evaluate")
    model = bench_vit(kind, config)
    load_checkpoint(model, point["checkpoint"])
    result, outputs = score_model(kind, model.to(device), config, device, datasets, progress=False)
    return result, mean_map_scores(outputs, config.patch_size)


def matched_report(curves: dict, config: DemoConfig, device, datasets: dict, final: dict) -> dict | None:
    """``report.json["matched"]`` (None without curves): ``level``, ``chosen_on`` (the curves' split),
    ``evaluated_on`` (``config.eval_split``), each model's chosen validation ``points``, ``steps`` and
    ``checkpoints``, and the checkpoints' ``results`` and ``mean_map`` scores on the evaluation images.

    Args:
        curves: each model's validation curve points (with their ``checkpoint``).
        datasets: the rendered evaluation images, by variant.
        final: by model, ``{"result", "mean_map", "steps"}`` of the trained model.
    """
    chosen = matched_points(curves, GATE)
    if chosen is None:
        return None
    matched = {
        "level": chosen["level"],
        "chosen_on": CURVE_SPLIT,
        "evaluated_on": config.eval_split,
        "points": chosen["points"],
        "steps": {kind: point["step"] for kind, point in chosen["points"].items()},
        "checkpoints": {kind: point.get("checkpoint") for kind, point in chosen["points"].items()},
        "results": {},
        "mean_map": {},
    }
    for kind, point in chosen["points"].items():
        result, scores = checkpoint_scores(kind, point, config, device, datasets, final)
        matched["results"][kind] = {"step": point["step"], **result}
        matched["mean_map"][kind] = scores
    return matched
