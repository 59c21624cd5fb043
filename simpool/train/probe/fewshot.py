"""Few-shot probing (DINOv3's few-shot linear evaluation): ``probe.shots`` images per class, ``probe.tries`` seeded
subsets each, every head's mean and standard deviation of its test top-1.

For each ``k`` of ``probe.shots`` and each try ``t``, the training part (the held-out part is left as it is) is cut
to ``k`` images per class (:func:`few_shot_rows`, seeded by ``(train.seed, k, t)``; a class with fewer keeps all of
its images), and the whole grid trains again on them from the same initial heads (the global batch at most the
subset's size), over the full run's backbone, splits and token cache, and evaluated on the held-out and test tokens
the full run kept (each image through the backbone once in the whole run). Each head's setting is selected on the
held-out part, as in the full run, and its top-1 on every test set is kept; the k-NN row votes from the same subset.
``results.json`` ``few_shot`` holds, per row and ``k``, the top-1 of every try on the first test set, their ``mean``
and ``std`` (over the tries, ``ddof = 0``), the setting chosen each time, and the top-1 of every try on every test
set.
"""

from __future__ import annotations

import numpy as np

from ...evaluate.features import format_table
from ..distributed import DistInfo
from ..engine import Engine
from .config import ProbeConfig
from .report import best_per_head, test_scores


def few_shot_rows(labels: np.ndarray, rows: np.ndarray, shots: int, seed: int, trial: int) -> np.ndarray:
    """``shots`` of ``rows`` per class (``labels[row]``), drawn without replacement seeded by ``(seed, shots,
    trial)``; sorted."""
    rng = np.random.default_rng([seed, shots, trial])
    rows = np.asarray(rows)
    picked = []
    for label in np.unique(labels[rows]):
        members = rows[labels[rows] == label]
        picked.append(rng.choice(members, size=min(shots, len(members)), replace=False))
    return np.sort(np.concatenate(picked))


def one_try(make_recipe, rows: np.ndarray, info: DistInfo) -> dict[str, dict]:
    """Train the grid of ``make_recipe(rows)`` on ``rows`` alone (no run folder) and return each head's (and the
    k-NN row's) selected setting and top-1 per test set: ``{row name: {"label", "test_sets": {name: top1}}}``."""
    recipe = make_recipe(rows)
    Engine(recipe, recipe.loop, info, None).run()
    held, tests, knn = recipe.evaluate()
    labels = [entry.label for entry in recipe.grid.entries]
    rows_of = [{"head": e.head, "holdout_top1": float(held["top1"][i])} for i, e in enumerate(recipe.grid.entries)]
    out = {}
    for head, index in best_per_head(rows_of).items():
        top1 = {name: scores["top1"] for name, scores in test_scores(tests, index).items()}
        out[head] = {"label": labels[index], "test_sets": top1}
    if knn is not None:
        out["knn"] = {"label": knn["label"], "test_sets": {n: s["top1"] for n, s in knn["test_sets"].items()}}
    return out


def few_shot(make_recipe, config: ProbeConfig, labels: np.ndarray, fit_rows: np.ndarray, info: DistInfo) -> dict:
    """Every ``k`` of ``probe.shots`` x ``probe.tries`` seeded subsets of ``fit_rows``: see the module docstring.
    ``make_recipe(rows)``: the recipe of one try, reusing the full run's backbone, splits and evaluation tokens
    (:class:`~.run.Reused`). Every process must call it."""
    settings, seed = config.probe, config.train.seed
    runs: dict[str, dict[str, list]] = {}
    for shots in settings.shots:
        for trial in range(settings.tries):
            rows = few_shot_rows(labels, fit_rows, shots, seed, trial)
            for name, row in one_try(make_recipe, rows, info).items():
                runs.setdefault(name, {}).setdefault(str(shots), []).append(row)
    table = {}
    for name, per_k in runs.items():
        table[name] = {}
        for shots, tries in per_k.items():
            first = [next(iter(t["test_sets"].values())) for t in tries]  # (tries,) on the first test set
            table[name][shots] = {
                "mean": float(np.mean(first)),
                "std": float(np.std(first)),
                "top1": first,
                "labels": [t["label"] for t in tries],
                "test_sets": {test: [t["test_sets"][test] for t in tries] for test in tries[0]["test_sets"]},
            }
    return {"shots": list(settings.shots), "tries": settings.tries, "rows": table}


def few_shot_table(few: dict) -> str:
    """One row per head (and the k-NN row), one column per ``k``: ``mean +- std`` of the test top-1."""
    columns = [str(k) for k in few["shots"]]
    rows = [
        (name, *(f"{per_k[k]['mean']:.2f} +- {per_k[k]['std']:.2f}" for k in columns))
        for name, per_k in few["rows"].items()
    ]
    return format_table(rows, ("few-shot top1", *(f"k={k}" for k in columns)))


__all__ = ["few_shot", "few_shot_rows", "few_shot_table", "one_try"]
