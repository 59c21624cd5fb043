"""``simpool demo``: the paper's supervised comparison, CLS token vs SimPool, on the SimPool bench."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from ..experiments.demo import PRESETS, DemoConfig, preset, run_demo
from .common import add_no_progress, add_out, check_writable
from .recipe import add_overrides, resolve_config

EXAMPLE = """examples:
  simpool demo --quick --out outputs/demo_quick
  simpool demo seed=1
  simpool demo --preset converge eval_split=val
  simpool demo --preset gpu
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="a size of the job")
    parser.add_argument("--quick", action="store_true", help="the 'quick' preset: end to end in under 2 minutes")
    add_overrides(parser, example="seed=1 eval_split=val (DemoConfig fields, after the preset)")
    add_out(parser, default="outputs/demo", help="folder for report.md, report.json, figure.png and curves.png")
    parser.add_argument("--fashion-mnist-dir", default=None, help="folder of the Fashion-MNIST IDX files")
    add_no_progress(parser)


def run(args: argparse.Namespace) -> int:
    check_writable(args.out)
    if args.fashion_mnist_dir:
        os.environ["SIMPOOL_FASHION_MNIST"] = str(args.fashion_mnist_dir)
    name = "quick" if args.quick else args.preset
    config = resolve_config(args, DemoConfig, base=preset(name))
    if name == "gpu" and not torch.cuda.is_available():
        print("note: --preset gpu without CUDA runs on the CPU and will take long")
    device = torch.device("cuda" if name == "gpu" and torch.cuda.is_available() else "cpu")
    report = run_demo(config, args.out, device, progress=not args.no_progress)
    print(report["table"])
    for sentence in report["curve_summary"]:
        print(sentence)
    print(
        f"report: {Path(args.out) / 'report.md'}  figures: {report['figure']}, {report['curves_figure']}  "
        f"weights: {', '.join(report['checkpoints'].values())}  "
        f"({report['wall_seconds']:.0f} s; curves {100 * report['curve_fraction']:.1f}% of the training time)"
    )
    return 0
