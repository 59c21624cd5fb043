"""``simpool demo``: the paper's supervised comparison, CLS token vs SimPool, on the SimPool bench; ``--pair``
pairs finished runs of several seeds."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from ..experiments.demo import PRESETS, DemoConfig, choose_lr, pair_runs, preset, run_demo
from .common import add_no_progress, add_out, check_writable
from .recipe import add_overrides, resolve_config

EXAMPLE = """examples:
  simpool demo --quick --out outputs/demo_quick
  simpool demo seed=1 --out outputs/demo_s1
  simpool demo --preset converge eval_split=val
  simpool demo --preset gpu
  simpool demo --pair outputs/demo_s1 outputs/demo_s2 outputs/demo_s3 --out outputs/demo_paired
  simpool demo --choose-lr outputs/lr_3e-4 outputs/lr_1e-3 outputs/lr_3e-3 --out outputs/lr_choice
each arm's learning rate, chosen on val (runs of one setting but lr, with eval_split=val), then scored on test:
  simpool demo lr=3e-4 eval_split=val --out outputs/lr_3e-4     (and lr=1e-3, lr=3e-3)
  simpool demo cls_lr=... simpool_lr=... --out outputs/demo     (the rates --choose-lr prints)
a stopped run resumes each arm from its last saved state when the same command runs again (--no-resume: train
afresh in the same folder)
"""
DEMO_OUT, PAIR_OUT, CHOICE_OUT = "outputs/demo", "outputs/demo_paired", "outputs/lr_choice"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="a size of the job")
    parser.add_argument("--quick", action="store_true", help="the 'quick' preset: end to end in under 2 minutes")
    add_overrides(parser, example="seed=1 eval_split=val (DemoConfig fields, after the preset)")
    reads = parser.add_mutually_exclusive_group()
    reads.add_argument(
        "--pair",
        nargs="+",
        metavar="RUN_DIR",
        default=None,
        help="pair finished runs of one setting, one per seed: SimPool - CLS with 95%% intervals (paired.json)",
    )
    reads.add_argument(
        "--choose-lr",
        nargs="+",
        metavar="RUN_DIR",
        default=None,
        help="choose each arm's learning rate from finished eval_split=val runs of one setting but lr, by val "
        "top-1 on original (lr_choice.json); prints the cls_lr=... simpool_lr=... overrides of the final runs",
    )
    add_out(
        parser,
        help=f"folder for report.md, report.json, figure.png and curves.png (default {DEMO_OUT}); with --pair, "
        f"for paired.json (default {PAIR_OUT}); with --choose-lr, for lr_choice.json (default {CHOICE_OUT})",
    )
    parser.add_argument("--fashion-mnist-dir", default=None, help="folder of the Fashion-MNIST IDX files")
    parser.add_argument(  # not dest no_resume: that would add train.resume=false, which DemoConfig does not have
        "--no-resume",
        dest="fresh",
        action="store_true",
        help="train both arms afresh even if --out holds a stopped run of the same settings (it resumes by default)",
    )
    add_no_progress(parser)


# the options that read finished runs: option -> (default --out, reader, what it wrote, its key in the result)
READERS = {
    "pair": (PAIR_OUT, pair_runs, "paired", "paired_json"),
    "choose_lr": (CHOICE_OUT, choose_lr, "choice", "lr_choice_json"),
}


def read_finished(args: argparse.Namespace, option: str) -> int:
    """``--pair`` or ``--choose-lr``: a table of finished runs, printed and written to a JSON file in ``--out``."""
    if args.overrides or args.quick or args.fresh:
        flag = "--" + option.replace("_", "-")
        raise ValueError(f"{flag} reads finished runs: it takes no key=value overrides, no --quick and no --no-resume")
    default, reader, label, key = READERS[option]
    out = args.out or default
    check_writable(out, kind="folder")
    result = reader(getattr(args, option), out)
    print(result["table"])
    print(f"{label}: {result[key]}")
    return 0


def run(args: argparse.Namespace) -> int:
    for option in READERS:
        if getattr(args, option) is not None:
            return read_finished(args, option)
    args.out = args.out or DEMO_OUT
    check_writable(args.out, kind="folder")
    if args.fashion_mnist_dir:
        os.environ["SIMPOOL_FASHION_MNIST"] = str(args.fashion_mnist_dir)
    name = "quick" if args.quick else args.preset
    config = resolve_config(args, DemoConfig, base=preset(name))
    if name == "gpu" and not torch.cuda.is_available():
        print("note: --preset gpu without CUDA runs on the CPU and will take long")
    device = torch.device("cuda" if name == "gpu" and torch.cuda.is_available() else "cpu")
    report = run_demo(config, args.out, device, progress=not args.no_progress, resume=not args.fresh)
    print(report["table"])
    for sentence in report["baseline_summary"] + report["curve_summary"]:
        print(sentence)
    seconds = report["seconds"]
    extra = seconds["baselines"] + seconds["matched"]
    print(
        f"report: {Path(args.out) / 'report.md'}  figures: {report['figure']}, {report['curves_figure']}  "
        f"weights: {', '.join(report['checkpoints'].values())}  "
        f"({report['wall_seconds']:.0f} s; curves {100 * report['curve_fraction']:.1f}% of the training time; "
        f"baselines and matched checkpoints {extra:.0f} s)"
    )
    return 0
