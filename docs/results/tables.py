"""The tables of docs/RESULTS.md, written from the outputs kept beside this file.

Every table in RESULTS.md sits between ``<!-- table NAME -->`` and ``<!-- /table -->``; :data:`TABLES` maps NAME to
the function that writes it from the JSON files under ``docs/results/``. Typed numbers drift; these cannot.

    python docs/results/tables.py          # rewrite the tables of docs/RESULTS.md in place
    python docs/results/tables.py --check  # exit 1, naming them, when a table differs from what the outputs give
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

from simpool.evaluate.baselines import FIXED  # the maps that ignore the image and need no model
from simpool.experiments.demo.config import DemoConfig

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "RESULTS.md"
BLOCK = re.compile(r"(<!-- table (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.DOTALL)


def load(relative: str) -> dict | list:
    return json.loads((HERE / relative).read_text())


def load_run(run: str) -> dict:
    """The ``report.json`` of a run folder named from the repository root, as ``paired.json`` and ``lr_choice.json``
    name their runs."""
    return json.loads((HERE.parents[1] / run / "report.json").read_text())


def strongest_fixed(baselines: dict) -> float:
    """MaxBoxAccV2 of the strongest map that ignores the image among a report's :data:`FIXED` baselines."""
    from simpool.evaluate.attention_quality import strongest_baseline

    return strongest_baseline({name: baselines[name] for name in FIXED}, "MaxBoxAccV2")[1]


def markdown(header: list[str], rows: list[list]) -> str:
    """A Markdown table; floats as given by the caller (format them first)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def source_line(output: dict, path: str) -> str:
    """Where the numbers come from: the kept file, its command, machine and date (and the load, where kept)."""
    return "\nFrom " + _source(output, path) + ".\n"


def source_lines(outputs: list[tuple[dict, str]]) -> str:
    """:func:`source_line` for a table made of several kept files, one line each."""
    return "\nFrom:\n\n" + "".join(f"- {_source(output, path)}\n" for output, path in outputs)


def _source(output: dict, path: str) -> str:
    load = output.get("load")
    busy = f", load average {load[0]:.2f} at the start and {output['load_end'][0]:.2f} at the end" if load else ""
    return f"`docs/results/{path}`: `{output['command']}` on {output['machine']}, {output['date']}{busy}"


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (simpool's Student-t interval; 0 for one value)."""
    from simpool.experiments.demo.intervals import t_interval

    mean, ci = t_interval(values)
    return mean, 0.0 if ci is None else ci[1] - mean


# ---------------------------------------------------------------------------------------------------- the tables
def pxap_parity() -> str:
    output = load("pxap_parity.json")
    header = ["maps", "map side", "mask side", "interval", "wsolevaluation", "simpool", "difference"]
    rows = [
        [c["images"], c["map_side"], c["mask_side"], c["interval"]]
        + [f"{c['wsolevaluation']:.10f}", f"{c['simpool']:.10f}", f"{c['difference']:.1e}"]
        for c in output["cases"]
    ]
    return markdown(header, rows) + source_line(output, "pxap_parity.json")


def _regime_rows(output: dict) -> list[list]:
    """One row per regime: its scales and overhang, the objects' area, each baseline's MaxBoxAccV2 and PxAP."""
    rows = []
    for regime in output["regimes"]:
        scores = regime["baselines"]
        rows.append(
            [f"{regime['min_scale']:g}-{regime['max_scale']:g}", f"{regime['overhang']:g}"]
            + [f"{regime['object_area']:.3f}"]
            + [f"{scores[name]['MaxBoxAccV2']:.1f}" for name in FIXED]
            + [f"{scores[name]['PxAP']:.1f}" for name in FIXED]
            + [f"{regime['margin_over_uniform']:+.1f}"]
        )
    return rows


REGIME_HEADER = [
    "object side",
    "overhang",
    "object area",
    "MaxBoxAccV2 uniform",
    "centre",
    "box prior",
    "PxAP uniform",
    "centre",
    "box prior",
    "margin",
]


def bench_regime(path: str) -> Callable[[], str]:
    def table() -> str:
        output = load(path)
        intro = f"{output['images']} `original` images of the `{output['split']}` split.\n\n"
        return intro + markdown(REGIME_HEADER, _regime_rows(output)) + source_line(output, path)

    return table


def maxboxacc_parity() -> str:
    outputs = [(load(path), path) for path in ("maxboxacc_parity_0.001.json", "maxboxacc_parity_0.01.json")]
    header = ["interval", "maps", "identical correct counts", "wsolevaluation ms/map", "simpool ms/map", "ratio"]
    rows = [
        [o["interval"], o["num_maps"], "yes" if o["identical_counts"] else "**no**"]
        + [f"{o['reference_ms_per_map']:.2f}", f"{o['simpool_ms_per_map']:.2f}"]
        + [f"{o['reference_ms_per_map'] / o['simpool_ms_per_map']:.1f}x"]
        for o, _ in outputs
    ]
    commit = outputs[0][0]["reference_commit"]
    note = f"\nReference: clovaai/wsolevaluation at `{commit[:8]}`.\n"
    return markdown(header, rows) + note + source_lines(outputs)


def maxboxacc_speed() -> str:
    header = ["interval", "thresholds", "maps", "loop ms/map", "C kernel ms/map", "speed-up"]
    header += ["loop ms/map, second run", "without the kernel ms/map", "speed-up", "identical IoU curves"]
    rows, outputs = [], []
    for interval in ("0.001", "0.01"):
        paths = (f"maxboxacc_speed_{interval}.json", f"maxboxacc_speed_{interval}_fallback.json")
        kernel, fallback = (load(path) for path in paths)
        outputs += [(kernel, paths[0]), (fallback, paths[1])]
        rows.append(
            [interval, kernel["thresholds"], kernel["num_maps"], f"{kernel['loop_ms_per_map']:.2f}"]
            + [f"{kernel['fast_ms_per_map']:.2f}", f"{kernel['loop_ms_per_map'] / kernel['fast_ms_per_map']:.1f}x"]
            + [f"{fallback['loop_ms_per_map']:.2f}", f"{fallback['fast_ms_per_map']:.2f}"]
            + [f"{fallback['loop_ms_per_map'] / fallback['fast_ms_per_map']:.1f}x"]
            + ["yes" if kernel["identical"] and fallback["identical"] else "**no**"]
        )
    return markdown(header, rows) + source_lines(outputs)


def probe_heads_parity() -> str:
    output = load("probe_heads_parity.json")
    header = ["head", "mode", "max abs diff float32", "max abs diff float64", "max abs output"]
    rows = [
        [f"`{r['head']}`", r["mode"], f"{r['float32']:.2e}", f"{r['float64']:.2e}", f"{r['max_abs_output']:.3g}"]
        if "error" not in r
        else [f"`{r['head']}`", r["mode"], f"not run: {r['error']}", "", ""]
        for r in output["rows"]
    ]
    setting = f"{output['channels']} channels, {output['tokens']} tokens, batch {output['batch']}"
    note = f"\n{setting}; reference: {output['reference']} at `{output['reference_commit'][:8]}`.\n"
    return markdown(header, rows) + note + source_line(output, "probe_heads_parity.json")


def bench_speed() -> str:
    output = load("bench_speed.json")
    sizes = [str(size) for size in output["sizes"]]
    header = ["variant"] + [f"{size}x{size} images/s" for size in sizes]
    rows = [[r["variant"]] + [f"{r['images_per_second'][size]:,.0f}" for size in sizes] for r in output["rows"]]
    return markdown(header, rows) + source_line(output, "bench_speed.json")


def _pool_rows(bench: str) -> list[dict]:
    return [row for row in load("pool_overhead.json")["rows"] if row["bench"] == bench]


def _shape(row: dict) -> str:
    return "(" + ", ".join(str(n) for n in row["shape"]) + ")"


def pool_cost() -> str:
    rows = _pool_rows("pool fwd+bwd")
    header = ["features", "gamma", "method", "ms", "timm / this", "this / eager SimPool", "this / GAP"]
    body = [
        [_shape(r), f"{r['gamma']:g}", r["method"], f"{r['ms']:.1f}", f"{r['speedup_vs_timm']:.2f}x"]
        + [f"{r['vs_eager_simpool']:.2f}x", f"{r['vs_gap']:.1f}x"]
        for r in rows
    ]
    return markdown(header, body) + source_line(load("pool_overhead.json"), "pool_overhead.json")


def value_path() -> str:
    rows = _pool_rows("value path fwd+bwd")
    header = ["tokens", "gamma", "method", "ms", "autograd / this"]
    body = [
        [_shape(r), f"{r['gamma']:g}", r["method"], f"{r['ms']:.1f}", f"{r['speedup_vs_autograd']:.2f}x"] for r in rows
    ]
    return markdown(header, body) + source_line(load("pool_overhead.json"), "pool_overhead.json")


STEP_RUNS = ("pool_overhead.json", "train_step.json")


def train_step() -> str:
    """The whole training step in each run that timed it, side by side: how far two runs of one setting agree."""
    outputs = [(load(path), path) for path in STEP_RUNS]
    runs = [[row for row in output["rows"] if row["bench"] == "train step fwd+bwd"] for output, _ in outputs]
    header = ["model", "batch", "pool"]
    header += [column for k in range(len(runs)) for column in (f"run {k + 1} ms", f"run {k + 1} overhead")]
    body = []
    for rows in zip(*runs, strict=True):
        cells = [cell for r in rows for cell in (f"{r['ms']:.1f}", f"{100 * r['overhead_vs_baseline']:+.1f}%")]
        body.append([rows[0]["model"], rows[0]["batch"], rows[0]["method"], *cells])
    sources = "".join(f"- run {k + 1}: {_source(output, path)}\n" for k, (output, path) in enumerate(outputs))
    return markdown(header, body) + "\nFrom:\n\n" + sources


def resources() -> str:
    output, paper = load("resources.json"), load("paper_table8.json")
    printed = {(r["model"], r["pool"]): r for r in paper["rows"]}
    header = ["model", "pool", "params (M)", "paper params", "GMACs", "GMACs (paper conv.)", "paper GFLOPs"]
    header += ["SimPool GMACs", "SimPool GMACs, direct formula"]
    rows = []
    for r in output["rows"]:
        theirs = printed[(r["model"], r["pool"])]
        pool = [f"{r['pool_gmacs']:.4f}", f"{r['pool_gmacs_direct']:.4f}"] if r["pool_gmacs"] is not None else ["", ""]
        rows.append(
            [r["model"], r["pool"], f"{r['params_m']:.2f}", f"{theirs['params_m']:.1f}", f"{r['gmacs']:.3f}"]
            + [f"{r['gmacs_paper']:.3f}", f"{theirs['gflops']:.2f}"]
            + pool
        )
    size = output["rows"][0]["image_size"]
    note = f"\nAt {size}x{size}, batch 1. The paper's columns ({paper['units']}): {paper['source']}, kept in "
    note += "`docs/results/paper_table8.json`.\n"
    return markdown(header, rows) + note + source_line(output, "resources.json")


CONVERGE_RUNS = ("demo_converge/test_s1", "demo_converge/test_s2", "demo_converge/test_s3")
CONVERGE_METRICS = {
    "top-1 `original`": ("acc_original", 3),
    "top-1 `mixed_rand`": ("acc_mixed_rand", 3),
    "MaxBoxAccV2": ("MaxBoxAccV2", 1),
    "CorLoc": ("CorLoc", 1),
    "mask mass": ("mask_mass", 3),
}


def old_bench_converge() -> str:
    """The converge preset's final test numbers per seed, CLS / SimPool, and the paired difference's 95% interval."""
    reports = [load(f"{run}/report.json") for run in CONVERGE_RUNS]
    seeds = [str(report["config"]["seed"]) for report in reports]
    header = ["final, CLS / SimPool"] + [f"seed {seed}" for seed in seeds] + ["SimPool - CLS, mean ± 95% CI"]
    rows = []
    for label, (key, digits) in CONVERGE_METRICS.items():
        pairs = [(report["results"]["cls"][key], report["results"]["simpool"][key]) for report in reports]
        mean, half = mean_ci([simpool - cls for cls, simpool in pairs])
        cells = [f"{cls:.{digits}f} / {simpool:.{digits}f}" for cls, simpool in pairs]
        rows.append([label, *cells, f"{mean:+.{digits}f} ± {half:.{digits}f}"])
    threads = ", ".join(str(report["versions"]["threads"]) for report in reports)
    files = ", ".join(f"`docs/results/{run}/report.json`" for run in CONVERGE_RUNS)
    versions = reports[0]["versions"]
    source = (
        f"\nFrom {files}: `simpool demo --preset converge --seed S --set eval_split=test --out DIR` with simpool "
        f"{versions['simpool']}, torch {versions['torch']}, timm {versions['timm']}, {threads} threads (seeds "
        f"{', '.join(seeds)}).\n"
    )
    return markdown(header, rows) + source


DEMO_ROWS = {  # label: (key, digits)
    "top-1 `original`": ("acc_original", 3),
    "top-1 `mixed_rand`": ("acc_mixed_rand", 3),
    "MaxBoxAccV2": ("MaxBoxAccV2", 1),
    "PxAP": ("PxAP", 1),
    "CorLoc": ("CorLoc", 1),
    "mask mass": ("mask_mass", 3),
}
DEMO_MAPS = ("MaxBoxAccV2", "PxAP", "CorLoc", "mask_mass")


DEMO_COMMAND = "simpool demo seed={seed} --out DIR"


def demo_run(path: str, command: str = DEMO_COMMAND, settings: str = "the default settings") -> Callable[[], str]:
    """One ``simpool demo`` run: both models' final scores, then every map that ignores the image scored alike, the
    models at initialisation and each model's own mean map, and the comparison at matched accuracy (chosen on
    val). ``command``: how the run was made (``{seed}`` filled from its report), ``settings``: what they were."""

    def table() -> str:
        report = load(path)
        results, baselines, matched = report["results"], report["baselines"], report["matched"]
        rows = [
            [label, *(f"{results[k][key]:.{digits}f}" for k in ("cls", "simpool"))]
            for label, (key, digits) in DEMO_ROWS.items()
        ]
        final = markdown(["final, on `test`", "CLS", "SimPool"], rows)
        maps = [(name, baselines[name]) for name in FIXED]
        maps += [(f"{k} at initialisation", baselines["init"][k]) for k in ("cls", "simpool")]
        maps += [(f"{k}'s own mean map", baselines["mean_map"][k]) for k in ("cls", "simpool")]
        level = f"matched `mixed_rand` {matched['level']:.3f}"
        maps += [(f"{k} at {level} (update {matched['steps'][k]})", matched["results"][k]) for k in ("cls", "simpool")]
        rows = [[name, *(f"{scores[m]:.{3 if m == 'mask_mass' else 1}f}" for m in DEMO_MAPS)] for name, scores in maps]
        others = markdown(["map", *DEMO_MAPS], rows)
        versions = report["versions"]
        source = (
            f"\nFrom `docs/results/{path}`: `{command.format(seed=report['config']['seed'])}` ({settings}), "
            f"simpool {versions['simpool']}, torch {versions['torch']}, {versions['threads']} threads, "
            f"{report['wall_seconds'] / 60:.1f} wall minutes.\n"
        )
        return final + "\n" + others + source

    return table


def _demo_runs(reports: list[dict]) -> str:
    """What made a table's ``simpool demo`` runs: the versions, and each run's threads and wall minutes."""
    versions = reports[0]["versions"]
    walls = ", ".join(f"{report['wall_seconds'] / 60:.1f}" for report in reports)
    threads = ", ".join(str(report["versions"]["threads"]) for report in reports)
    return (
        f"simpool {versions['simpool']}, torch {versions['torch']}, timm {versions['timm']}; threads per run: "
        f"{threads}; wall minutes per run: {walls}"
    )


def demo_seeds(folder: str, command: str = "simpool demo seed=S --out DIR", how: str = "") -> Callable[[], str]:
    """The paired table of ``simpool demo --pair`` kept in ``folder/paired.json``, rebuilt from its numbers by the
    library's own :func:`simpool.experiments.demo.seeds.paired_table`, then the runs' commands and machine.
    ``command``: how each run was made; ``how``: how the runs shared the machine."""

    def table() -> str:
        from simpool.experiments.demo.seeds import paired_table

        paired = load(f"{folder}/paired.json")
        reports = [load(f"{folder}/seed_{run['seed']}/report.json") for run in paired["runs"]]
        source = (
            f"\nFrom `docs/results/{folder}/paired.json` (`simpool demo --pair` of the {len(reports)} folders) and "
            f"`seed_S/report.json` (`{command}`); {_demo_runs(reports)}{how}.\n"
        )
        return paired_table(paired) + "\n" + source

    return table


def lr_choice(folder: str, settings: str = "", how: str = "") -> Callable[[], str]:
    """Each arm's learning rate chosen on ``val`` (``simpool demo --choose-lr``, kept in ``folder/lr_choice.json``),
    rebuilt by the library's own :func:`simpool.experiments.demo.lr_choice.lr_table`, then the grid runs' commands
    (``settings``: their overrides other than the rate, ``depth=8 `` for example; ``how``: how the runs went)."""

    def table() -> str:
        from simpool.experiments.demo.lr_choice import lr_table

        choice = load(f"{folder}/lr_choice.json")
        runs = list(dict.fromkeys(point["run"] for arm in choice["arms"].values() for point in arm["grid"]))
        reports = [load_run(run) for run in runs]
        lrs = ", ".join(f"{report['config']['lr']:g}" for report in reports)
        source = (
            f"\nFrom `docs/results/{folder}/lr_choice.json` (`simpool demo --choose-lr` of the {len(runs)} folders "
            f"`{folder}/lr_L`) and `lr_L/report.json` (`simpool demo {settings}lr=L eval_split=val --out DIR`, "
            f"L = {lrs}); "
            f"{_demo_runs(reports)}{how}.\n"
        )
        return lr_table(choice) + "\n" + source

    return table


DEPTH_FOLDERS = (  # (row label, blocks, epochs, folder of paired.json): the sweep's 3 seeds, the 5-seed follow-ups
    ("4", 4, 2.0, "demo_default"),
    ("8", 8, 2.0, "demo_depth/depth_8"),
    ("8, seeds 0-4 (follow-up)", 8, 2.0, "demo_depth/depth_8/five_seeds"),
    ("8, seeds 0-4, 4 epochs", 8, 4.0, "demo_depth/depth_8/epochs_4"),
    ("12", 12, 2.0, "demo_depth/depth_12"),
    ("12, seeds 0-4 (follow-up)", 12, 2.0, "demo_depth/depth_12/five_seeds"),
)


def _paired_cell(row: dict, digits: int) -> str:
    """``+d [lo, hi] reading`` of one paired difference of ``paired.json``."""
    low, high = row["ci95"]
    return f"{row['mean']:+.{digits}f} [{low:.{digits}f}, {high:.{digits}f}] {row['wording']}"


def depth_sweep() -> str:
    """The default demo at several depths (the ``simpool demo --pair`` of each depth's seeds): both arms' test top-1
    and MaxBoxAccV2, SimPool - CLS with its 95% interval, each arm over the strongest map that ignores the image,
    the parameters and the wall time per run."""
    header = ["blocks", "parameters CLS / SimPool", "top-1 `original` CLS / SimPool", "SimPool - CLS"]
    header += ["MaxBoxAccV2 CLS / SimPool", "SimPool - CLS", "PxAP SimPool - CLS", "strongest fixed map"]
    header += ["CLS - strongest fixed map", "SimPool - strongest fixed map", "own mean maps CLS / SimPool"]
    rows, sources = [], []
    for label, depth, epochs, folder in DEPTH_FOLDERS:
        paired = load(f"{folder}/paired.json")
        reports = [load_run(run["run"]) for run in paired["runs"]]
        if {(report["config"]["depth"], report["config"]["epochs"]) for report in reports} != {(depth, epochs)}:
            raise SystemExit(f"docs/results/{folder}: runs not of depth {depth} and {epochs:g} epochs")
        final, over, results = paired["final"], paired["over_strongest_baseline"], reports[0]["results"]
        strongest = max(paired["baselines"][name]["MaxBoxAccV2"]["mean"] for name in FIXED)
        row = [label, f"{results['cls']['parameters']:,} / {results['simpool']['parameters']:,}"]
        row += [f"{final['acc_original']['cls']:.3f} / {final['acc_original']['simpool']:.3f}"]
        row += [_paired_cell(final["acc_original"], 3)]
        row += [f"{final['MaxBoxAccV2']['cls']:.1f} / {final['MaxBoxAccV2']['simpool']:.1f}"]
        row += [_paired_cell(final["MaxBoxAccV2"], 1), _paired_cell(final["PxAP"], 1), f"{strongest:.1f}"]
        row += [_paired_cell(over[kind]["MaxBoxAccV2"], 1) for kind in ("cls", "simpool")]
        mean_map = paired["mean_map"]["MaxBoxAccV2"]
        rows.append(row + [f"{mean_map['cls']:.1f} / {mean_map['simpool']:.1f}"])
        seeds = ", ".join(str(run["seed"]) for run in paired["runs"])
        schedule = "" if epochs == DemoConfig.epochs else f", {epochs:g} epochs"
        sources.append(
            f"- {depth} blocks{schedule}: `docs/results/{folder}/paired.json` (seeds {seeds}); {_demo_runs(reports)}"
        )
    note = (
        "\nMeans over the runs; each difference is paired by seed, mean [95% CI] and its reading. Made by "
        "`simpool demo depth=D seed=S --out DIR` (4 blocks: the default demo; 4 epochs: `epochs=4` added) and "
        "`simpool demo --pair DIR...` per depth:\n\n"
    )
    return markdown(header, rows) + note + "\n".join(sources) + "\n"


LONGER = (  # (blocks, seed): runs where SimPool's map did not lead in 2 epochs, run again with epochs=4 on val
    (8, 1),
    (8, 4),
    (12, 1),
)


def _arms(point: dict, key: str, digits: int) -> str:
    """``CLS / SimPool`` of one score, from a pair of curve points or a run's ``results``."""
    return " / ".join(f"{point[k][key]:.{digits}f}" for k in ("cls", "simpool"))


def _longer_rows(run: str, short: dict, long: dict) -> list[list]:
    """Both arms at the end of each schedule on the curves' ``val`` images, then the longer run on all of ``val``."""
    if short["curve_subset"] != long["curve_subset"]:
        raise SystemExit(f"{run}: the two runs' curves are not on the same val images")
    rows = []
    for report in (short, long):
        curves, subset = report["curves"], report["curve_subset"]
        end = {k: curves[k][-1] for k in ("cls", "simpool")}
        strongest = strongest_fixed(subset["baselines"])
        rows.append(
            [run, f"{end['cls']['epoch']:g} epochs", f"{end['cls']['step']:,}", f"the curves' {subset['images']} `val`"]
            + [_arms(end, key, 3) for key in ("top1_original", "top1_mixed_rand")]
            + [_arms(end, key, 1) for key in ("MaxBoxAccV2", "PxAP")]
            + [f"{strongest:.1f}", "- (not on the curves)"]
        )
    results, config = long["results"], long["config"]
    strongest = strongest_fixed(long["baselines"])
    rows.append(
        [run, f"{config['epochs']:g} epochs", f"{results['cls']['steps']:,}"]
        + [f"all {config['eval_images']:,} `{config['eval_split']}`"]
        + [_arms(results, key, 3) for key in ("acc_original", "acc_mixed_rand")]
        + [_arms(results, key, 1) for key in ("MaxBoxAccV2", "PxAP")]
        + [f"{strongest:.1f}", _arms(long["baselines"]["mean_map"], "MaxBoxAccV2", 1)]
    )
    return rows


def longer_schedule() -> str:
    """The runs of :data:`LONGER` again with twice the updates (exploratory, on ``val``): :func:`_longer_rows` each,
    then where the numbers come from."""
    header = ["run", "schedule", "updates", "images", "top-1 `original` CLS / SimPool"]
    header += ["top-1 `mixed_rand` CLS / SimPool", "MaxBoxAccV2 CLS / SimPool", "PxAP CLS / SimPool"]
    header += ["strongest fixed map", "own mean maps CLS / SimPool"]
    rows, sources = [], []
    for depth, seed in LONGER:
        paths = [f"demo_depth/depth_{depth}/{folder}seed_{seed}/report.json" for folder in ("", "longer/")]
        short, long = (load(path) for path in paths)
        if {short["config"]["depth"], long["config"]["depth"]} != {depth} or long["config"]["seed"] != seed:
            raise SystemExit(f"docs/results/{paths[1]}: not the run of {depth} blocks, seed {seed}")
        rows += _longer_rows(f"{depth} blocks, seed {seed}", short, long)
        sources.append(
            f"- `docs/results/{paths[0]}` (`simpool demo depth={depth} seed={seed} --out DIR`, scored on `test`, "
            f"its curves on `val`) and `docs/results/{paths[1]}` (`simpool demo depth={depth} seed={seed} epochs=4 "
            f"eval_split=val --out DIR`); {_demo_runs([short, long])}"
        )
    return markdown(header, rows) + "\nFrom:\n\n" + "\n".join(sources) + "\n"


PROBE_VARIANTS = ("original", "only_fg", "mixed_same", "mixed_rand")


def _spread(values: list[float], digits: int, sign: str = "") -> str:
    """``mean`` of one value, ``mean ± sample std`` of several (``sign="+"``: the mean signed)."""
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:{sign}.{digits}f}"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:{sign}.{digits}f} ± {std:.{digits}f}"


def _probe_head_rows(results: list[dict], variants: list[str]) -> list[list]:
    """One row per head at its selected setting (and the k-NN row), over the runs (seeds) of one backbone; top-1 on
    each of ``variants``, the head's MaxBoxAccV2 and PxAP, the same score of its own mean map (its attention averaged
    over the test images, used for every image) and its margin over the strongest of the maps that need no model;
    ``-`` where a run has no such number, ``no map`` where the head's maps are constant (GAP's uniform attention:
    :func:`simpool.evaluate.attention_quality.read_scores`)."""
    from simpool.evaluate.attention_quality import read_scores

    strongest = [strongest_fixed(r["baselines"]) for r in results]
    rows = []
    for index, head in enumerate([*results[0]["heads"], results[0]["knn"]]):
        runs = [read_scores([*r["heads"], r["knn"]][index]) for r in results]
        assert all(run["label"] == head["label"] for run in runs), "runs of one backbone must probe the same heads"
        lrs = "/".join(sorted({f"{run['lr']:g}" for run in runs})) if "lr" in head else "-"
        cells = [_spread([run["test_top1"] for run in runs], 1)]
        cells += [_spread([run["test_sets"][v]["top1"] for run in runs], 1) for v in variants]
        cells.append(_spread([run["bg_gap"] for run in runs], 1) if "bg_gap" in head else "-")
        if any(run.get("MaxBoxAccV2", 0) is None for run in runs):  # a constant map: nothing to score
            cells += ["no map (constant)", "-", "-", "-"]
        elif "MaxBoxAccV2" in head:
            cells += [_spread([run[m] for run in runs], 1) for m in ("MaxBoxAccV2", "PxAP")]
            own = f"mean_map/{head['label']}"
            cells.append(_spread([r["baselines"][own]["MaxBoxAccV2"] for r in results], 1))
            margin = [run["MaxBoxAccV2"] - best for run, best in zip(runs, strongest, strict=True)]
            cells.append(_spread(margin, 1, "+"))
        else:
            cells += ["-", "-", "-", "-"]
        rows.append([f"`{head['label']}`", lrs, *cells])
    return rows


def dino_backbone(folder: str) -> Callable[[], str]:
    """A DINO bench backbone of the probing study, kept in ``folder``: per epoch its loss and the k-NN top-1 its
    monitor measured, then its commands (``run.json``)."""

    def table() -> str:
        run = load(f"{folder}/run.json")
        with open(HERE / folder / "log.csv", newline="") as handle:
            epochs = list(csv.DictReader(handle))
        header = ["epoch", "updates", "train loss", "k-NN top-1 `val`", "k-NN top-5 `val`", "images/s"]
        rows = [
            [int(e["epoch"]) + 1, e["update"], f"{float(e['train_loss']):.3f}", f"{float(e['knn_top1']):.1f}"]
            + [f"{float(e['knn_top5']):.1f}", f"{float(e['images_per_s']):.0f}"]
            for e in epochs
        ]
        minutes = sum(float(e["time_s"]) for e in epochs) / 60
        commands = "; ".join(f"`{command}`" for command in run["commands"])
        source = (
            f"\nFrom `docs/results/{folder}/log.csv` and `config.yaml` (the run's own) and `run.json`: {commands} on "
            f"{run['machine']}, {run['date']}; {minutes:.0f} minutes of training ({run['note']}).\n"
        )
        return markdown(header, rows) + source

    return table


CUE_COLUMNS = {
    "class_mixed_rand": "class `mixed_rand`",
    "photo_mixed_rand": "photo `mixed_rand`",
    "class_only_fg": "class `only_fg`",
}


def feature_cues() -> str:
    """What each backbone's features tell apart (``docs/examples/feature_cues.py``): DINO's k-NN top-1 with its 95%
    bootstrap interval over the queries, for the class and the background photo, through the CLS token and the patch
    mean; one row per backbone, the random ones by seed."""
    output = load("probe_bench/cues.json")
    header = [
        "backbone",
        *(f"CLS: {c}" for c in CUE_COLUMNS.values()),
        *(f"patch mean: {c}" for c in CUE_COLUMNS.values()),
    ]
    rows = []
    for row in output["backbones"]:
        name = f"{row['name']} (seed {row['seed']})" if "seed" in row else f"{row['name']} (`{row['checkpoint']}`)"
        cells = [
            f"{row[feature][q]['top1']:.1f} [{row[feature][q]['low']:.1f}, {row[feature][q]['high']:.1f}]"
            for feature in ("cls", "patch_mean")
            for q in CUE_COLUMNS
        ]
        rows.append([name, *cells])
    bench, chance = output["bench"], output["chance"]
    note = (
        f"\nChance: class {chance['class']:.0f}, photo {chance['photo']:.0f}. k-NN with k = {output['k']}, "
        f"T = {output['temperature']}; bank: the first {bench['num_images']:,} `val` images, queries: as many `test` "
        f"images (bench seed {bench['seed']}, {bench['image_size']} px).\n"
    )
    return markdown(header, rows) + note + source_line(output, "probe_bench/cues.json")


def _probe_runs(runs: list[dict]) -> str:
    """``probe seeds 0, 1, 2 on `a.safetensors```, or per seed its checkpoint when the runs probe several."""
    checkpoints = [re.search(r"--checkpoint (\S+)", run["command"]).group(1) for run in runs]
    if len(set(checkpoints)) == 1:
        return f"probe seeds {', '.join(str(run['seed']) for run in runs)} on `{checkpoints[0]}`"
    return "probe seed " + ", ".join(f"{run['seed']} on `{c}`" for run, c in zip(runs, checkpoints, strict=True))


def _where(study: dict) -> str:
    """Where and when a study's runs ran: ``on M, D`` per group of runs (a run without its own record: the study's)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for run in study["runs"]:
        place = (run.get("machine", study["machine"]), run.get("date", study["date"]))
        groups.setdefault(place, []).append(run["name"])
    if len(groups) == 1:
        ((machine_, date),) = groups
        return f"on {machine_}, {date}"
    return "; ".join(f"{', '.join(dict.fromkeys(names))} on {m}, {d}" for (m, d), names in groups.items())


def probe_bench(folder: str) -> Callable[[], str]:
    """The probing study kept in ``folder`` (``docs/examples/probe_study.py``): per backbone, each head's top-1 on
    the test split and on IN-9 variants, its BG-gap, MaxBoxAccV2 and PxAP, and its margin over the strongest map
    that ignores the image; then those maps; then the few-shot top-1."""

    def table() -> str:
        study = load(f"{folder}/study.json")
        names = list(dict.fromkeys(run["name"] for run in study["runs"]))
        parts = []
        for name in names:
            runs = [run for run in study["runs"] if run["name"] == name]
            results = [load(f"{folder}/{name}_s{run['seed']}/results.json") for run in runs]
            variants = [v for v in PROBE_VARIANTS if v in results[0]["heads"][0]["test_sets"]]
            header = ["head", "lr", "top-1 `test`", *(f"`{v}`" for v in variants), "BG-gap", "MaxBoxAccV2", "PxAP"]
            header += ["its own mean map's MaxBoxAccV2", "MaxBoxAccV2 - strongest fixed map"]
            rows = _probe_head_rows(results, variants)
            parts.append(f"**{name}** ({_probe_runs(runs)}):\n\n" + markdown(header, rows))
            maps = [
                [name_, *(_spread([r["baselines"][name_][m] for r in results], 1) for m in ("MaxBoxAccV2", "PxAP"))]
                for name_ in FIXED
            ]
            parts.append(markdown([f"{name}: map ignoring the image", "MaxBoxAccV2", "PxAP"], maps))
            few = [r["few_shot"] for r in results if "few_shot" in r]
            if few:
                shots = [str(k) for k in few[0]["shots"]]
                rows = [
                    [f"`{row}`", *(_spread([f["rows"][row][k]["mean"] for f in few], 1) for k in shots)]
                    for row in few[0]["rows"]
                ]
                tries = few[0]["tries"]
                parts.append(markdown([f"{name}: few-shot top-1 (mean of {tries} tries)", *shots], rows))
        walls = ", ".join(f"{run['name']} seed {run['seed']} {run['wall_s'] / 60:.1f}" for run in study["runs"])
        commands = "".join(f"- `{run['command']}`\n" for run in study["runs"])
        source = (
            f"\nFrom `docs/results/{folder}/study.json` and the `results.json` beside it: `{study['command']}` (its "
            f"latest invocation), {_where(study)}; wall minutes: {walls}. The probe runs:\n\n{commands}"
        )
        data = HERE / folder / "data.json"
        if data.exists():
            record = load(f"{folder}/data.json")
            exports = "; ".join(f"`{command}`" for command in record["commands"])
            source += f"\nTheir data (`docs/results/{folder}/data.json`): {exports} ({record['note']}).\n"
        return "\n".join(parts) + source

    return table


def make_demo_time() -> str:
    """``make demo``'s wall time against its 10-minute goal, and where the demo's own time goes (its report's
    ``seconds``)."""
    timing = load("make_demo_time.json")
    report = load(timing["report"])
    parts = report["seconds"]
    rows = [["`make demo` (set-up check + `simpool demo`)", f"{timing['make_wall_seconds']:.0f}"]]
    rows += [["`simpool demo` (its report's `wall_seconds`)", f"{report['wall_seconds']:.0f}"]]
    rows += [[f"- {name}", f"{seconds:.0f}"] for name, seconds in parts.items()]
    rows += [["- the rest (start, rendering, figures)", f"{report['wall_seconds'] - sum(parts.values()):.0f}"]]
    rows += [["goal", f"{timing['goal_seconds']}"]]
    rows += [["over the goal", f"{timing['make_wall_seconds'] - timing['goal_seconds']:+.0f}"]]
    before = timing["before"]
    rows += [[f"`make demo` at {before['commit']} ({before['note']})", f"{before['make_wall_seconds']:.0f}"]]
    source = (
        f"\nFrom `docs/results/make_demo_time.json` (`{timing['command']}` at {timing['commit']}, "
        f"{timing['date']}; {timing['machine']}; {timing['cpu_percent']}% CPU) and `docs/results/{timing['report']}`.\n"
    )
    return markdown(["part", "seconds"], rows) + source


TABLES: dict[str, Callable[[], str]] = {
    "bench-regime-val": bench_regime("bench_regime_val.json"),
    "bench-regime-test": bench_regime("bench_regime_test.json"),
    "demo-seeds": demo_seeds(
        "demo_default", how=" (seed 0 on the idle machine, seeds 1 and 2 two at a time beside other work)"
    ),
    "demo-seed-0": demo_run("demo_default/seed_0/report.json"),
    "lr-choice-converge": lr_choice(
        "demo_converge_new/lr_grid",
        "--preset converge ",
        " (lr 3e-4 was stopped in its CLS arm and resumed by the same command: its wall minutes are the resumed"
        " run's; its report's CLS training seconds count both parts, the updates redone after the stop once)",
    ),
    "converge-seeds": demo_seeds(
        "demo_converge_new",
        "simpool demo --preset converge seed=S --out DIR",
        " (seed 1 with 2 threads beside other work; seeds 2 and 3 side by side, one thread each)",
    ),
    "converge-seeds-3e-3": demo_seeds(
        "demo_converge_new/lr_3e-3",
        "simpool demo --preset converge cls_lr=0.003 simpool_lr=0.003 seed=S --out DIR",
        " (seed 1 alone; seed 2 beside a CI run; seed 3 beside a probe run on one thread at nice 10)",
    ),
    "make-demo-time": make_demo_time,
    "old-bench-converge": old_bench_converge,
    "lr-choice": lr_choice("demo_default/lr_grid"),
    "depth-sweep": depth_sweep,
    "lr-choice-depth-8": lr_choice("demo_depth/depth_8/lr_grid", "depth=8 "),
    "longer-schedule": longer_schedule,
    "lr-choice-depth-12": lr_choice("demo_depth/depth_12/lr_grid", "depth=12 "),
    "probe-bench": probe_bench("probe_bench"),
    "dino-backbone": dino_backbone("probe_bench/dino_backbone"),
    "dino-bg0-backbone": dino_backbone("probe_bench/dino_bg0_backbone"),
    "dino-pairs-backbone": dino_backbone("probe_bench/dino_pairs_backbone"),
    "feature-cues": feature_cues,
    "pxap-parity": pxap_parity,
    "maxboxacc-parity": maxboxacc_parity,
    "probe-heads-parity": probe_heads_parity,
    "maxboxacc-speed": maxboxacc_speed,
    "bench-speed": bench_speed,
    "pool-cost": pool_cost,
    "value-path": value_path,
    "train-step": train_step,
    "resources": resources,
}


def render(text: str) -> tuple[str, list[str]]:
    """``text`` with every table block rewritten, and the names of those that changed."""
    changed, seen = [], set()

    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in TABLES:
            raise SystemExit(f"RESULTS.md names table {name!r}; known tables: {', '.join(TABLES)}")
        seen.add(name)
        body = TABLES[name]()
        if body != match["body"]:
            changed.append(name)
        return match.group(1) + body + match.group(4)

    text = BLOCK.sub(replace, text)
    missing = sorted(set(TABLES) - seen)
    if missing:
        raise SystemExit(f"RESULTS.md has no block for: {', '.join(missing)}")
    return text, changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 when a table differs from its outputs")
    args = parser.parse_args(argv)
    text, changed = render(RESULTS.read_text())
    if args.check:
        if changed:
            print(
                f"tables differ from docs/results/: {', '.join(changed)}; run python docs/results/tables.py",
                file=sys.stderr,
            )
            return 1
        print(f"{len(TABLES)} tables match their outputs")
        return 0
    RESULTS.write_text(text)
    print(f"rewrote {len(changed)} of {len(TABLES)} tables" + (f": {', '.join(changed)}" if changed else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
