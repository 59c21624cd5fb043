"""``simpool tournament``: train one backbone with each pool under one budget and seed, and rank the pools."""

from __future__ import annotations

import argparse

from ..experiments.tournament import DEFAULT_POOLS, TournamentConfig, run_tournament
from ..experiments.tournament_report import to_markdown
from .common import add_out, add_runtime, check_writable, device_of
from .recipe import add_overrides, resolve_config

EXAMPLE = """examples:
  simpool tournament --out runs/tournament                       # every Table 1 pool, tiny ViT, bench
  simpool tournament --pools gap gem simpool "framework:attention=sigmoid" --out runs/t2 steps=100
  simpool tournament --out runs/t3 model=tiny_resnet dataset=fashion-mnist
The key=value overrides are TournamentConfig fields (model, dataset, steps, batch_size, lr, weight_decay, seed,
image_size, train_images, test_images, depth); give them after --out, as --pools takes every word until the next
option. Interrupted? Run the same command again: finished pools are kept and skipped.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pools", nargs="+", default=list(DEFAULT_POOLS), help="pools, optionally name:key=value,...")
    add_overrides(parser, example="steps=100 model=tiny_resnet (TournamentConfig fields)")
    add_out(parser, required=True, help="output folder (results.csv, results.md, results.png)")
    add_runtime(parser, batch_size=None, seed=False, loader=False)  # --device, --no-progress


def run(args: argparse.Namespace) -> int:
    check_writable(args.out, kind="folder")
    misplaced = [spec for spec in args.pools if "=" in spec.partition(":")[0]]
    if misplaced:
        raise ValueError(
            f"--pools {' '.join(misplaced)}: a pool is name or name:key=value,...; give key=value overrides of the "
            "config after --out"
        )
    config = resolve_config(args, TournamentConfig)
    rows = run_tournament(args.pools, args.out, config, device_of(args), progress=not args.no_progress)
    print(to_markdown(rows), end="")
    return 0 if all(r["status"] == "ok" for r in rows) else 1
