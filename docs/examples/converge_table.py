"""Tables of `simpool demo` runs over seeds (docs/RESULTS.md, "Demo curves and the converge preset").

Usage: python docs/examples/converge_table.py RUN [RUN ...]
Each RUN is a `simpool demo --out` folder holding `report.json`. It prints, per model and as the paired
difference SimPool - CLS within each run, the mean and standard deviation over the runs (ddof=1) of

- the final evaluation (the run's `eval_images` of its split): top-1 `original` / `mixed_rand`, MaxBoxAccV2,
  CorLoc and the attention mass in the object mask;
- the comparison at matched accuracy: each model's first curve point at the highest `mixed_rand` level up to
  the 0.6 gate that both reach (`matched_points`, on the run's curve subset), with that point's update,
  `mixed_rand` top-1, MaxBoxAccV2 and mask mass.
"""

import json
import sys
from pathlib import Path

import numpy as np

from simpool.experiments.bench_report import matched_points

FINAL = ("acc_original", "acc_mixed_rand", "MaxBoxAccV2", "CorLoc", "mask_mass")
MATCHED = ("step", "top1_mixed_rand", "MaxBoxAccV2", "mask_mass")


def mean_std(values: list[float]) -> str:
    """``mean ± std`` of ``values`` (std with ddof=1; the value alone for one run)."""
    digits = 1 if max(abs(v) for v in values) >= 2 else 3
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def table(title: str, keys: tuple[str, ...], rows: list[dict[str, dict]]) -> str:
    """A markdown table: one line per key, columns CLS, SimPool and SimPool - CLS (paired within a run)."""
    lines = [f"| {title} | CLS | SimPool | SimPool - CLS |", "|---|---|---|---|"]
    for key in keys:
        cls = [row["cls"][key] for row in rows]
        sim = [row["simpool"][key] for row in rows]
        diff = [s - c for s, c in zip(sim, cls, strict=True)]
        lines.append(f"| {key} | {mean_std(cls)} | {mean_std(sim)} | {mean_std(diff)} |")
    return "\n".join(lines)


def main(runs: list[str]) -> int:
    if not runs:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    reports = [json.loads((Path(run) / "report.json").read_text()) for run in runs]
    finals, matched, levels = [], [], []
    for run, report in zip(runs, reports, strict=True):
        config = report["config"]
        match = matched_points(report["curves"], report["gate"])
        levels.append(match["level"])
        finals.append(report["results"])
        matched.append(match["points"])
        print(
            f"{run}: seed {config['seed']}, {config['eval_split']} split, {config['train_images']} images x "
            f"{config['epochs']:g} epochs, matched level {match['level']:.3f}, wall {report['wall_seconds']:.0f} s"
        )
    print()
    print(table(f"final ({len(runs)} runs)", FINAL, finals))
    print()
    print(table(f"matched mixed_rand (level {mean_std(levels)})", MATCHED, matched))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
