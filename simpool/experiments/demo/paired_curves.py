"""SimPool - CLS along the training curves of several seeds (part of ``simpool demo --pair``).

Each run scores both models at the same curve points (the same updates, on the same ``val`` images), so the two
are paired at every point as they are at the end: the difference SimPool - CLS is taken per run and point, and its
mean over runs is given with the Student-t 95% interval and wording of :mod:`.intervals`. This is what says *when* in
training one model's attention is ahead, with an interval, rather than from one seed's curves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...visualize.figures import save_figure as write_figure
from ..bench_report import CURVE_LEVELS, NAMES
from .intervals import t_interval, wording

CURVE_METRICS = ("top1_original", "top1_mixed_rand", "MaxBoxAccV2", "PxAP")
READINGS = ("SimPool higher", "CLS higher", "no consistent difference")


def curve_differences(reports: list[dict], metrics=CURVE_METRICS) -> dict | None:
    """``{"split", "points": [{"step", "epoch", metric: {"cls", "simpool", "mean", "ci95", "wording",
    "per_seed"}}], "readings": {metric: {wording: [epoch, ...]}}, "levels"}`` over the runs' curves (``levels``:
    :func:`_levels`); None when no run has curves (``curve_points=0``).

    Raises:
        ValueError: some runs have curves and some not, or their curve points differ (one line).
    """
    with_curves = [bool(report.get("curves")) for report in reports]
    if not any(with_curves):
        return None
    if not all(with_curves):
        raise ValueError("some runs have training curves and some not (curve_points=0?): pair alike runs")
    steps = [[point["step"] for point in report["curves"]["cls"]] for report in reports]
    for report, seen in zip(reports, steps, strict=True):
        if seen != steps[0] or [p["step"] for p in report["curves"]["simpool"]] != steps[0]:
            raise ValueError(f"the run of seed {report['config']['seed']} has other curve points: pair alike runs")
    points = []
    for index, step in enumerate(steps[0]):
        point = {"step": step, "epoch": reports[0]["curves"]["cls"][index]["epoch"]}
        for metric in metrics:
            cls, sim = ([float(r["curves"][kind][index][metric]) for r in reports] for kind in ("cls", "simpool"))
            mean, ci = t_interval([s - c for c, s in zip(cls, sim, strict=True)])
            point[metric] = {
                "cls": float(np.mean(cls)),
                "simpool": float(np.mean(sim)),
                "mean": mean,
                "ci95": ci,
                "wording": wording(ci),
                "per_seed": {"cls": cls, "simpool": sim},
            }
        points.append(point)
    readings = {
        metric: {text: [p["epoch"] for p in points if p[metric]["wording"] == text] for text in READINGS}
        for metric in metrics
    }
    split = reports[0].get("curve_subset", {}).get("split", "val")
    return {"split": split, "points": points, "readings": readings, "levels": _levels(reports, metrics)}


def _levels(reports: list[dict], metrics) -> dict:
    """``{name: {metric: mean}}``: the uniform and centre maps' scores on the curves' images, averaged over runs
    (those the reports kept)."""
    levels = {}
    for name, _, _ in CURVE_LEVELS:
        kept = [r.get("curve_subset", {}).get("baselines", {}).get(name, {}) for r in reports]
        shared = [m for m in metrics if all(m in scores for scores in kept)]
        if shared:
            levels[name] = {m: float(np.mean([scores[m] for scores in kept])) for m in shared}
    return levels


def curve_table(curves: dict, metrics=("top1_mixed_rand", "MaxBoxAccV2", "PxAP")) -> list[str]:
    """Markdown lines: one row per curve point, SimPool - CLS of each of ``metrics`` with its 95% interval."""
    lines = [
        "",
        f"| on the `{curves['split']}` curves, epoch | " + " | ".join(f"SimPool - CLS {m}" for m in metrics) + " |",
        "|---" * (len(metrics) + 1) + "|",
    ]
    for point in curves["points"]:
        cells = []
        for metric in metrics:
            row, digits = point[metric], 3 if metric.startswith("top1") else 1
            interval = "" if row["ci95"] is None else f" [{row['ci95'][0]:.{digits}f}, {row['ci95'][1]:.{digits}f}]"
            cells.append(f"{row['mean']:+.{digits}f}{interval} {_mark(row['wording'])}".rstrip())
        lines.append(f"| {point['epoch']:.2f} | " + " | ".join(cells) + " |")
    lines.append("\n(+: SimPool higher, -: CLS higher, blank: no consistent difference, by the 95% interval)")
    return lines


def _mark(text: str) -> str:
    return {"SimPool higher": "(+)", "CLS higher": "(-)"}.get(text, "")


def save_paired_curves(curves: dict, path: str | Path, metrics=CURVE_METRICS) -> Path:
    """``paired_curves.png``: top row, each model's curve per seed (thin) and its mean (thick), with the uniform and
    centre maps' levels; bottom row, the mean of SimPool - CLS with its 95% interval as a band and the zero line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = curves["points"]
    epochs = np.array([p["epoch"] for p in points])
    fig, axes = plt.subplots(2, len(metrics), figsize=(3.2 * len(metrics), 5.4), squeeze=False, sharex=True)
    for column, metric in enumerate(metrics):
        top, bottom = axes[0][column], axes[1][column]
        for color, kind in zip(("C0", "C1"), ("cls", "simpool"), strict=True):
            per_seed = np.array([p[metric]["per_seed"][kind] for p in points])  # (points, runs)
            top.plot(epochs, per_seed, color=color, lw=0.6, alpha=0.35)
            top.plot(epochs, per_seed.mean(axis=1), color=color, lw=2, label=NAMES[kind])
        for name, style, text in CURVE_LEVELS:
            if metric in curves.get("levels", {}).get(name, {}):
                top.axhline(curves["levels"][name][metric], color="grey", ls=style, lw=1, label=text)
        difference = np.array([p[metric]["mean"] for p in points])
        bottom.plot(epochs, difference, color="C2", lw=2, label="SimPool - CLS")
        if all(p[metric]["ci95"] is not None for p in points):
            low, high = (np.array([p[metric]["ci95"][k] for p in points]) for k in (0, 1))
            bottom.fill_between(epochs, low, high, color="C2", alpha=0.25, label="95% interval")
        bottom.axhline(0, color="grey", lw=1)
        top.set_title(f"{metric} ({curves['split']})", fontsize=9)
        bottom.set_xlabel("epoch", fontsize=8)
        for ax in (top, bottom):
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6)
    fig.tight_layout()
    return write_figure(fig, Path(path))
