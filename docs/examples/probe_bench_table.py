"""Per-head tables of `simpool probe` runs over several seeds (docs/RESULTS.md, attentive probing on the bench).

Usage: python docs/examples/probe_bench_table.py RUN [RUN ...]
Each RUN is a `simpool probe` run folder holding `results.json`. The runs are grouped by backbone checkpoint;
for each backbone it prints, per head at its selected lr, the mean and standard deviation (over the runs, i.e.
the seeds; ddof=1) of test top-1, MaxBoxAccV2, PxAP and the attention mass in the object mask, the uniform map's
mask mass, the paired difference of MaxBoxAccV2 to the `linear` row (the backbone's last-block CLS attention)
within each seed, with the number of seeds where the head beats it, and the paired difference to the strongest
image-independent baseline. Then the baselines the runs scored on the same test images (`results.json`
`baselines`: uniform, centre, box_prior, each head's mean map), and the rule for reading the maps. A run made
before the baselines existed shows `-` where it has no number.
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

FIXED = ("uniform", "centre", "box_prior")  # the baselines that need no model


def mean_std(values: list, digits: int = 1) -> str:
    """``mean ± std`` of ``values`` (std with ddof=1; ``mean`` alone for one value; ``-`` when one is missing)."""
    if not values or any(v is None for v in values):
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def strongest(result: dict, metric: str) -> float | None:
    """The highest ``metric`` of the baselines that need no model, or ``None`` without baselines."""
    scores = [result.get("baselines", {}).get(name, {}).get(metric) for name in FIXED]
    return max(scores) if scores and None not in scores else None


def head_rows(results: list[dict]) -> None:
    """The per-head table of one backbone's runs."""
    print(
        "| head | params | test top-1 | MaxBoxAccV2 | PxAP | mask mass (uniform) | MaxBoxAccV2 - linear | above linear "
        "| MaxBoxAccV2 - strongest baseline |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    by_head = [{h["head"]: h for h in r["heads"]} for r in results]  # one dict per seed
    best = [strongest(r, "MaxBoxAccV2") for r in results]
    for name in by_head[0]:
        rows = [seed[name] for seed in by_head]
        gain = [row["MaxBoxAccV2"] - seed["linear"]["MaxBoxAccV2"] for row, seed in zip(rows, by_head, strict=True)]
        above = "" if name == "linear" else f"{sum(g > 0 for g in gain)}/{len(gain)}"
        over = [None if b is None else row["MaxBoxAccV2"] - b for row, b in zip(rows, best, strict=True)]
        uniform = np.mean([r.get("uniform_mask_mass", np.nan) for r in rows])
        print(
            f"| {name} | {rows[0]['params']} | {mean_std([r['test_top1'] for r in rows])} "
            f"| {mean_std([r['MaxBoxAccV2'] for r in rows])} | {mean_std([r.get('PxAP') for r in rows])} "
            f"| {mean_std([r.get('mask_mass') for r in rows], 3)} ({uniform:.3f}) "
            f"| {'' if name == 'linear' else mean_std(gain)} | {above} | {mean_std(over)} |"
        )


def baseline_rows(results: list[dict]) -> None:
    """The baselines of one backbone's runs: mean ± std over the seeds."""
    print()
    if not all("baselines" in r for r in results):
        print("(runs without baselines: made before `simpool probe` scored them)")
        return
    print("| baseline | MaxBoxAccV2 | PxAP | mask mass |")
    print("|---|---|---|---|")
    for name in results[0]["baselines"]:
        scores = [r["baselines"][name] for r in results]
        print(
            f"| {name} | {mean_std([s['MaxBoxAccV2'] for s in scores])} | {mean_std([s.get('PxAP') for s in scores])} "
            f"| {mean_std([s.get('mask_mass') for s in scores], 3)} |"
        )
    prior = results[0]["box_prior"]
    print(f"box_prior: the mean object of the {prior['split']} split ({prior['from']}); {results[0]['attention_rule']}")


runs = defaultdict(list)  # checkpoint -> results of its runs
for folder in map(Path, sys.argv[1:]):
    results = json.loads((folder / "results.json").read_text())
    runs[results["backbone"]["checkpoint"]].append(results)

for checkpoint, results in runs.items():
    seeds = [r["settings"]["seed"] for r in results]
    settings = results[0]["settings"]
    print(f"\n### {checkpoint}: seeds {seeds}, epochs {settings['epochs']}, lrs {settings['lrs']}")
    print(
        f"{results[0]['num_test']} test images; selected on the held-out split: "
        + ", ".join(f"{r['selected']['head']} ({r['selected']['test_top1']:.1f})" for r in results)
    )
    head_rows(results)
    baseline_rows(results)
