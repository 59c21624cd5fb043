"""``simpool demo`` runs of several seeds, paired (``simpool demo --pair RUN RUN RUN``).

Each run trains both models from one seed, so the two are paired within a run: the difference SimPool - CLS of a
metric is taken in each run, and its mean over runs is given with a Student-t 95% confidence interval,
``mean +- t(0.975, n - 1) * sd / sqrt(n)`` (``sd`` with ``n - 1``). The wording follows the interval: "no
consistent difference" when it covers 0, else "SimPool higher" or "CLS higher". The final results, the results at
matched accuracy (chosen on validation in each run), each model at initialisation and each model's mean map are
paired; the maps that ignore the image (``uniform``, ``centre``, ``box_prior``) are averaged with the same
interval, and so is each model's margin over the strongest of them in its run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...evaluate.attention_quality import strongest_baseline
from ...evaluate.baselines import FIXED
from ...utils import write_json
from ..bench_report import NAMES
from .intervals import t_interval, wording
from .paired_curves import curve_differences, curve_table, save_paired_curves

FINAL_METRICS = ("acc_original", "acc_mixed_same", "acc_mixed_rand", "bg_gap", "MaxBoxAccV2", "PxAP", "CorLoc")
FINAL_METRICS += ("mask_mass",)
MATCHED_METRICS = ("step", "acc_mixed_rand", "MaxBoxAccV2", "PxAP", "CorLoc", "mask_mass")
MAP_METRICS = ("MaxBoxAccV2", "PxAP", "CorLoc", "mask_mass")
PAIRED_SECTIONS = (  # (paired.json key, path in report.json to {kind: scores}, metrics, title)
    ("final", ("results",), FINAL_METRICS, "final evaluation"),
    ("matched", ("matched", "results"), MATCHED_METRICS, "at matched accuracy (checkpoints chosen on val)"),
    ("init", ("baselines", "init"), MAP_METRICS, "at initialisation"),
    ("mean_map", ("baselines", "mean_map"), MAP_METRICS, "each model's own mean map"),
)


def _scores(report: dict, path: tuple[str, ...], kind: str, metric: str) -> float:
    node = report
    for key in (*path, kind, metric):
        if not isinstance(node, dict) or key not in node:
            seed = report.get("config", {}).get("seed")
            raise ValueError(f"the report of seed {seed} has no {'/'.join((*path, kind, metric))}")
        node = node[key]
    return float(node)


def paired_differences(reports: list[dict], metrics, section: tuple[str, ...] = ("results",)) -> dict:
    """``{metric: {"mean", "ci95", "n", "per_seed", "wording", "cls", "simpool"}}``: per report (one seed), the
    difference SimPool - CLS of ``report[section...][kind][metric]``; its mean, Student-t 95% interval and wording
    (:func:`t_interval`, :func:`wording`); ``per_seed``: ``[{"seed", "cls", "simpool", "difference"}]``; ``cls``,
    ``simpool``: each model's mean."""
    paired = {}
    for metric in metrics:
        rows = []
        for report in reports:
            cls, sim = (_scores(report, section, kind, metric) for kind in ("cls", "simpool"))
            rows.append({"seed": report["config"]["seed"], "cls": cls, "simpool": sim, "difference": sim - cls})
        mean, ci = t_interval([row["difference"] for row in rows])
        paired[metric] = {
            "mean": mean,
            "ci95": ci,
            "n": len(rows),
            "per_seed": rows,
            "wording": wording(ci),
            "cls": float(np.mean([row["cls"] for row in rows])),
            "simpool": float(np.mean([row["simpool"] for row in rows])),
        }
    return paired


def baseline_means(reports: list[dict], metrics=MAP_METRICS) -> dict:
    """``{name: {metric: {"mean", "ci95", "n"}}}`` of the maps that ignore the image, over the reports."""
    means = {}
    for name in FIXED:
        means[name] = {}
        for metric in metrics:
            mean, ci = t_interval([_scores(report, ("baselines",), name, metric) for report in reports])
            means[name][metric] = {"mean": mean, "ci95": ci, "n": len(reports)}
    return means


def over_strongest(reports: list[dict], metrics=("MaxBoxAccV2", "PxAP")) -> dict:
    """``{kind: {metric: {"mean", "ci95", "n", "wording"}}}``: each model's score minus the strongest map that
    ignores the image in its run (``strongest_baseline``), its mean and 95% interval over the reports; the wording
    "above"/"below the strongest baseline" when the interval excludes 0, else "no consistent difference"."""
    margins = {}
    for kind in ("cls", "simpool"):
        margins[kind] = {}
        for metric in metrics:
            values = [
                _scores(report, ("results",), kind, metric)
                - strongest_baseline({name: report["baselines"][name] for name in FIXED}, metric)[1]
                for report in reports
            ]
            mean, ci = t_interval(values)
            reading = wording(ci).replace("SimPool higher", "above").replace("CLS higher", "below")
            margins[kind][metric] = {"mean": mean, "ci95": ci, "n": len(values), "wording": reading}
    return margins


def first_difference(first: dict, config: dict, ignore: tuple[str, ...] = ()) -> str | None:
    """The first key (sorted) but ``ignore`` where two runs' configs differ, as ``"key (value against first's)"``;
    None when they agree."""
    for key in sorted(set(first) | set(config)):
        if key not in ignore and first.get(key) != config.get(key):
            return f"{key} ({config.get(key)!r} against {first.get(key)!r})"
    return None


def read_runs(run_dirs: list[str | Path]) -> list[dict]:
    """The ``report.json`` of each run folder, checked: one setting (every config field but ``seed`` equal), one
    run per seed, reports with baselines.

    Raises:
        ValueError: one line naming the run and what is wrong.
    """
    if not run_dirs:
        raise ValueError("--pair needs at least one run folder (simpool demo --out DIR), one per seed")
    reports, seeds = [], {}
    for run in map(Path, run_dirs):
        path = run / "report.json"
        if not path.is_file():
            raise ValueError(f"{run} has no report.json: pass simpool demo output folders")
        report = json.loads(path.read_text())
        if "baselines" not in report:
            raise ValueError(f"{path} has no baselines: a report from an older simpool demo; rerun it")
        seed = report["config"]["seed"]
        if seed in seeds:
            raise ValueError(f"{seeds[seed]} and {run} have the same seed {seed}: pair one run per seed")
        seeds[seed] = run
        if reports and (difference := first_difference(reports[0]["config"], report["config"], ("seed",))):
            raise ValueError(f"{run} differs from {run_dirs[0]} in {difference}: pair runs of one setting")
        reports.append(report)
    return reports


def pair_runs(run_dirs: list[str | Path], out: str | Path | None = None) -> dict:
    """The paired table of ``simpool demo`` runs, one per seed (:func:`read_runs`): ``runs``, ``config`` (without
    ``seed``), the paired sections (``final``, ``matched`` when every run has one, ``init``, ``mean_map``:
    :func:`paired_differences`), ``baselines`` (:func:`baseline_means`), ``over_strongest_baseline``
    (:func:`over_strongest`), ``matched_level``, ``curves`` (SimPool - CLS at every curve point:
    :func:`.paired_curves.curve_differences`, when the runs have curves) and ``table`` (:func:`paired_table`);
    written to ``out/paired.json``, with ``out/paired_curves.png``, when ``out`` is given."""
    reports = read_runs(run_dirs)
    config = {key: value for key, value in reports[0]["config"].items() if key != "seed"}
    paired = {
        "runs": [{"run": str(run), "seed": r["config"]["seed"]} for run, r in zip(run_dirs, reports, strict=True)]
    }
    paired["config"] = config
    with_matched = [bool(report.get("matched")) for report in reports]
    if any(with_matched) and not all(with_matched):
        raise ValueError("some runs have a matched comparison and some not (curve_points=0?): pair alike runs")
    for key, section, metrics, _ in PAIRED_SECTIONS:
        if key != "matched" or all(with_matched):
            paired[key] = paired_differences(reports, metrics, section)
    if all(with_matched):
        level, ci = t_interval([report["matched"]["level"] for report in reports])
        paired["matched_level"] = {"mean": level, "ci95": ci}
    paired["baselines"] = baseline_means(reports)
    paired["over_strongest_baseline"] = over_strongest(reports)
    curves = curve_differences(reports)
    if curves is not None:
        paired["curves"] = curves
    paired["table"] = paired_table(paired)
    if out is not None:
        if curves is not None:
            paired["curves_figure"] = str(save_paired_curves(curves, Path(out) / "paired_curves.png"))
        paired["paired_json"] = str(write_json(Path(out) / "paired.json", paired))
    return paired


def _number(metric: str, value: float) -> str:
    if metric == "step":
        return f"{value:.0f}"
    return f"{value:.3f}" if metric.startswith("acc_") or metric in ("bg_gap", "mask_mass") else f"{value:.1f}"


def _interval(metric: str, ci: list[float] | None) -> str:
    return "-" if ci is None else f"[{_number(metric, ci[0])}, {_number(metric, ci[1])}]"


def paired_table(paired: dict) -> str:
    """Markdown: one table per paired section (CLS, SimPool, SimPool - CLS, its 95% interval, the wording), one of
    the maps that ignore the image (mean and 95% interval over the runs), each model's margin over the strongest of
    them and, when the runs have curves, SimPool - CLS at every curve point."""
    n, split = len(paired["runs"]), paired["config"]["eval_split"]
    lines = [f"{n} runs (seeds {', '.join(str(run['seed']) for run in paired['runs'])}), scored on {split}."]
    for key, _, _, title in PAIRED_SECTIONS:
        if key not in paired:
            continue
        lines += ["", f"| {title} | {NAMES['cls']} | {NAMES['simpool']} | SimPool - CLS | 95% CI | reading |"]
        lines.append("|---|---|---|---|---|---|")
        for metric, row in paired[key].items():
            cells = [_number(metric, row[k]) for k in ("cls", "simpool", "mean")]
            lines.append(f"| {metric} | {' | '.join(cells)} | {_interval(metric, row['ci95'])} | {row['wording']} |")
        if key == "matched":
            level = paired["matched_level"]
            lines.append(f"\nmatched mixed_rand level: {level['mean']:.3f} {_interval('acc_', level['ci95'])}")
    metrics = list(next(iter(paired["baselines"].values())))
    lines += ["", "| map that ignores the image | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for name, scores in paired["baselines"].items():
        cells = [f"{_number(m, scores[m]['mean'])} {_interval(m, scores[m]['ci95'])}" for m in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| model - strongest map that ignores the image (per run) | mean | 95% CI | reading |",
        "|---|---|---|---|",
    ]
    for kind, margins in paired["over_strongest_baseline"].items():
        for metric, row in margins.items():
            cells = f"{_number(metric, row['mean'])} | {_interval(metric, row['ci95'])} | {row['wording']}"
            lines.append(f"| {NAMES[kind]} {metric} | {cells} |")
    if "curves" in paired:
        lines += curve_table(paired["curves"])
    return "\n".join(lines)
