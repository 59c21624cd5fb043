"""The probing study on the bench (docs/RESULTS.md, "Which probing head finds the object?"): one `simpool probe`
run per backbone and seed, their `results.json` kept, and the board over them.

Usage:
    python docs/examples/probe_study.py --backbone NAME=CHECKPOINT [--backbone ...] --seeds 0 1 2 \
        --runs RUNS_DIR --out docs/results/probe_bench -- PROBE_ARGS...

Each backbone (a checkpoint of the bench ViT, given a short NAME) is probed once per seed by
`simpool probe PROBE_ARGS --checkpoint CHECKPOINT --seed S --out RUNS_DIR/NAME_sS` (a finished run is only read
again). Its `results.json` is copied to `OUT/NAME_sS/results.json`; `OUT/study.json` records the commands, the
machine, the date, the load and each run's wall seconds (the runs an earlier study.json there kept stay, so seeds
can be added later; `command` is then this invocation's); `simpool board NAME=OUT/NAME_sS ...` then writes
`OUT/board/` from the copies, each backbone's seeds one row per head, so that the same command with `--check`
keeps the committed board true.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from record import machine, record_head, write_record  # noqa: E402

from simpool.cli.main import main as simpool  # noqa: E402


def backbone(text: str) -> tuple[str, str]:
    name, sep, checkpoint = text.partition("=")
    if not sep or not name or not checkpoint:
        raise argparse.ArgumentTypeError(f"{text!r}: give NAME=CHECKPOINT")
    return name, checkpoint


def probe_one(name: str, checkpoint: str, seed: int, runs: Path, out: Path, probe_args: list[str]) -> dict:
    """One probe run, its results.json copied under ``out``: ``{"name", "seed", "command", "wall_s", "machine",
    "date"}`` (a study's runs may span machines and days)."""
    run = runs / f"{name}_s{seed}"
    args = ["probe", *probe_args, "--checkpoint", checkpoint, "--seed", str(seed), "--out", str(run)]
    start = time.perf_counter()
    code = simpool(args)
    if code:
        raise SystemExit(f"simpool {shlex.join(args)} exited {code}")
    kept = out / run.name / "results.json"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "results.json", kept)
    command = "simpool " + shlex.join(args)
    wall = round(time.perf_counter() - start, 1)
    return {
        "name": name,
        "seed": seed,
        "command": command,
        "wall_s": wall,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
    }


def merged(record: Path, runs: list[dict]) -> list[dict]:
    """The runs an earlier ``study.json`` at ``record`` kept (each with the command that made it), then ``runs``;
    a backbone and seed run again replaces its earlier entry. Sorted by backbone (first seen first), then seed."""
    earlier = json.loads(record.read_text())["runs"] if record.exists() else []
    new = {(run["name"], run["seed"]) for run in runs}
    kept = [run for run in earlier if (run["name"], run["seed"]) not in new] + runs
    order = list(dict.fromkeys(run["name"] for run in kept))
    return sorted(kept, key=lambda run: (order.index(run["name"]), run["seed"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", type=backbone, action="append", required=True, help="NAME=CHECKPOINT")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--runs", type=Path, required=True, help="folder of the probe runs (not kept)")
    parser.add_argument("--out", type=Path, required=True, help="folder of the kept results and the board")
    parser.add_argument("probe_args", nargs=argparse.REMAINDER, help="-- then the arguments of every simpool probe")
    args = parser.parse_args(argv)
    probe_args = args.probe_args[1:] if args.probe_args[:1] == ["--"] else args.probe_args
    head = record_head()
    runs = [
        probe_one(name, checkpoint, seed, args.runs, args.out, probe_args)
        for name, checkpoint in args.backbone
        for seed in args.seeds
    ]
    runs = merged(args.out / "study.json", runs)
    folders = [f"{run['name']}={args.out / run['name']}_s{run['seed']}" for run in runs]  # a name: one backbone
    code = simpool(["board", *folders, "--out", str(args.out / "board")])
    write_record(args.out / "study.json", head, {"runs": runs})
    print(json.dumps(runs, indent=1))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
