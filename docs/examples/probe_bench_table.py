"""Per-head tables of `simpool probe` runs over several seeds (docs/RESULTS.md, attentive probing on the bench).

Usage: python docs/examples/probe_bench_table.py [--bench EXPORT] RUN [RUN ...]
Each RUN is a `simpool probe` run folder holding `results.json`. The runs are grouped by backbone checkpoint;
for each backbone it prints, per head at its selected lr, the mean and standard deviation (over the runs, i.e.
the seeds; ddof=1) of test top-1, MaxBoxAccV2 and the attention mass in the object mask, the uniform map's mask
mass, and the paired difference of MaxBoxAccV2 to the `linear` row (the backbone's last-block CLS attention)
within each seed, with the number of seeds where the head beats it. With ``--bench EXPORT`` (the `simpool bench
export --format wsol` folder the runs were tested on) it also scores 3 maps of uniform random noise at the
backbone's 8x8 token grid, the level a map unrelated to the image reaches.
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def mean_std(values: list[float], digits: int = 1) -> str:
    """``mean ± std`` of ``values`` (std with ddof=1; ``mean`` alone for one value)."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def random_maps(bench: Path, grid: int = 8, split: str = "test") -> None:
    """MaxBoxAccV2 and mask mass of uniform random maps ``(N, grid, grid)`` on the test split, 3 seeds."""
    from simpool.data.wsol import read_wsol_metadata
    from simpool.evaluate.attention_quality import attention_quality
    from simpool.train.probe.report import bench_masks

    metadata = read_wsol_metadata(bench / "metadata" / split)
    ids = [i for i in metadata.image_ids if i in metadata.boxes]
    masks = bench_masks(bench / "dataset", ids)  # (N, S, S)
    boxes, sizes = [metadata.boxes[i] for i in ids], [metadata.image_sizes[i] for i in ids]
    scores = [
        attention_quality(np.random.default_rng(seed).random((len(ids), grid, grid)), boxes, sizes, masks)
        for seed in range(3)
    ]
    print(
        f"random {grid}x{grid} maps, {len(ids)} {split} images: MaxBoxAccV2 "
        f"{mean_std([s['MaxBoxAccV2'] for s in scores])}, mask mass {mean_std([s['mask_mass'] for s in scores], 3)}"
    )


arguments = sys.argv[1:]
if arguments[:1] == ["--bench"]:
    random_maps(Path(arguments[1]))
    arguments = arguments[2:]
runs = defaultdict(list)  # checkpoint -> results of its runs
for folder in map(Path, arguments):
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
    print("| head | params | test top-1 | MaxBoxAccV2 | mask mass (uniform) | MaxBoxAccV2 - linear | above linear |")
    print("|---|---|---|---|---|---|---|")
    by_head = [{h["head"]: h for h in r["heads"]} for r in results]  # one dict per seed
    for name in by_head[0]:
        rows = [seed[name] for seed in by_head]
        gain = [row["MaxBoxAccV2"] - seed["linear"]["MaxBoxAccV2"] for row, seed in zip(rows, by_head, strict=True)]
        above = "" if name == "linear" else f"{sum(g > 0 for g in gain)}/{len(gain)}"
        print(
            f"| {name} | {rows[0]['params']} | {mean_std([r['test_top1'] for r in rows])} "
            f"| {mean_std([r['MaxBoxAccV2'] for r in rows])} "
            f"| {mean_std([r['mask_mass'] for r in rows], 3)} ({np.mean([r['uniform_mask_mass'] for r in rows]):.3f}) "
            f"| {'' if name == 'linear' else mean_std(gain)} | {above} |"
        )
