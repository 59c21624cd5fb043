"""``simpool board``: several probe runs (backbones x heads) in one board: board.md, board.csv and board.png."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..utils import atomic_write_bytes

EXAMPLE = """example:
  simpool board runs/probe_dino runs/probe_sup --out board/
  simpool board runs/probe_dino runs/probe_sup --out board/ --check   # exit 1 when board/board.md is stale
  simpool board sup=runs/sup_s0 sup=runs/sup_s1 dino=runs/dino_s0 --out board/   # runs of one NAME: one backbone
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help="probe run folders (or their results.json files), each as RUN or NAME=RUN: runs of one NAME are one "
        "backbone on the board (its seeds), whatever their checkpoints; without a name a backbone is its model and "
        "checkpoint",
    )
    parser.add_argument("--out", required=True, help="the board's folder: board.md, board.csv, board.png")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when OUT/board.md differs from what the runs give"
    )


def run(args: argparse.Namespace) -> int:
    from ..experiments.board import baseline_levels, board_csv, board_markdown, figure_points, gather, stale

    rows = gather(args.runs, args.out)  # each run named relative to --out
    markdown, out = board_markdown(rows), Path(args.out)
    if args.check:
        if stale(out / "board.md", markdown):
            print(f"{out / 'board.md'} differs from what the runs give: rerun without --check", file=sys.stderr)
            return 1
        print(f"{out / 'board.md'} is up to date ({len(rows)} rows)")
        return 0
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for board.md, board.csv and board.png")
    from ..visualize.board import board_figure

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "board.md", markdown.encode())
    atomic_write_bytes(out / "board.csv", board_csv(rows).encode())
    board_figure(figure_points(rows), out / "board.png", baseline_levels(rows))
    print(f"{len(rows)} rows from {len(set(row['run'] for row in rows))} runs -> {out}/board.md, board.csv, board.png")
    return 0
