"""``simpool probe``: attentive probing of a frozen backbone, every head x learning rate in one pass
(:func:`simpool.train.probe_run.probe`)."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from ..utils import parse_kv
from .common import add_data, add_img_size, add_model, add_out, add_runtime, check_writable

EXAMPLE = """examples:
  simpool probe --model vit_small_patch16_224 --checkpoint backbone.safetensors --data /data/imagenet \\
      --heads linear simpool ep map abmilp --lr 1e-3 3e-3 1e-2 --epochs 90 --out runs/probe
  simpool probe --model vit_small_patch16_224 --checkpoint mae.safetensors --data /data/imagenet \\
      --heads linear ep --opt lars --batch-size 4096 --cache --out runs/probe_lars     # efficient-probing's protocol
  torchrun --nproc_per_node=8 -m simpool.cli probe --model vit_base_patch16_224 --data /data/imagenet ...
--data holds the training split and the test split as ImageFolder layouts (class folders). The best head x lr is
chosen on a held-out part of the training split (--holdout), then its test top-1/top-5 is reported. Heads:
'linear' (CLS token, or GAP) or any pool name of `simpool landscape`. The run folder (--out) holds
results.json, probe.png (accuracy vs GFLOPs) and, where the test split has boxes (a `simpool bench export
--format wsol` folder: --data OUT/dataset), each head's attention scores and attention.png. Running the same
command again resumes an interrupted run."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data(parser, help="ImageFolder root holding the training split and the test split")
    parser.add_argument("--train-split", default="train", help="training sub-folder of --data (held-out part cut)")
    parser.add_argument("--test-split", default="val", help="test sub-folder of --data (the bench exports 'test')")
    parser.add_argument("--heads", nargs="+", default=["linear", "simpool"], help="'linear' or pool names")
    parser.add_argument(
        "--lr",
        nargs="+",
        default=None,
        metavar="LR",
        help="base learning rates (x batch/256); unset: 1e-3 AdamW, 0.1 LARS",
    )
    parser.add_argument("--opt", default="adamw", choices=("adamw", "lars"), help="optimizer of every head")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--epochs", type=int, default=90)
    parser.add_argument("--blocks", type=int, default=1, help="the last N blocks feed the heads")
    parser.add_argument("--blocks-mode", default="mean", choices=("mean", "concat"), help="how N blocks combine")
    parser.add_argument("--with-cls", action="store_true", help="the pools also see the CLS (prefix) tokens")
    parser.add_argument("--holdout", type=float, default=0.1, help="share of the training split held out")
    parser.add_argument("--cache", action="store_true", help="no augmentation: backbone tokens kept in a memmap")
    parser.add_argument("--metadata", default=None, help="wsolevaluation folder of the test split's boxes")
    parser.add_argument(
        "--head-kwargs",
        nargs="*",
        default=[],
        metavar="HEAD.KEY=VALUE",
        help="pool arguments of a head, e.g. aim.num_heads=6",
    )
    parser.add_argument("--amp", default="none", choices=("none", "bf16", "fp16", "auto"), help="mixed precision")
    add_img_size(parser)
    add_model(parser, pool="default")
    add_runtime(parser, batch_size=256)
    add_out(parser, default="runs/probe", help="run folder (results.json, figures, last.pt)")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if the run folder has last.pt")
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="any ProbeConfig field, e.g. probe.attention_images=200",
    )


def parse_lrs(values: list[str] | None) -> list[float]:
    """``--lr`` words as floats; a word that is not a number is one line naming it."""
    lrs = []
    for value in values or []:
        try:
            lrs.append(float(value))
        except ValueError:
            raise ValueError(f"--lr {value!r} is not a number") from None
    return lrs


def parse_head_kwargs(items: list[str]) -> dict[str, dict]:
    """``["aim.num_heads=6", "ep.num_queries=16"]`` -> ``{"aim": {"num_heads": 6}, "ep": {"num_queries": 16}}``."""
    nested: dict[str, dict] = {}
    for item in items:
        head, dot, rest = item.partition(".")
        if not dot or "=" not in rest:
            raise ValueError(f"--head-kwargs {item!r} is not of the form HEAD.KEY=VALUE (e.g. aim.num_heads=6)")
        nested.setdefault(head, {}).update(parse_kv([rest]))
    return nested


def config_of(args: argparse.Namespace):
    """The :class:`~simpool.train.probe_run.ProbeConfig` of the options, then ``--set`` overrides."""
    from ..train.config import check_bounds, from_dict, merge, parse_overrides
    from ..train.probe import check_grid
    from ..train.probe_config import ProbeConfig, resolved_lrs

    out = os.path.abspath(args.out)
    values = {
        "model": {
            "name": args.model, "pool": args.pool, "pool_kwargs": parse_kv(args.pool_kwargs),
            "kwargs": parse_kv(args.model_kwargs), "checkpoint": args.checkpoint or "",
            "checkpoint_key": args.checkpoint_key,
        },
        "data": {
            "root": args.data, "train_split": args.train_split, "val_split": args.test_split,
            "img_size": args.img_size, "num_workers": args.workers,
        },
        "train": {
            "epochs": args.epochs, "batch_size": args.batch_size, "amp": args.amp, "device": args.device or "auto",
            "seed": args.seed, "output": os.path.dirname(out), "name": os.path.basename(out),
            "resume": not args.no_resume, "progress": not args.no_progress,
        },
        "probe": {
            "heads": list(args.heads), "lrs": parse_lrs(args.lr), "opt": args.opt, "weight_decay": args.weight_decay,
            "blocks": args.blocks, "blocks_mode": args.blocks_mode, "with_cls": args.with_cls,
            "holdout": args.holdout, "cache": args.cache, "metadata": args.metadata or "",
            "head_kwargs": parse_head_kwargs(args.head_kwargs),
        },
    }  # fmt: skip
    config = from_dict(ProbeConfig, merge(values, parse_overrides(args.set)))
    for section in (config.model, config.data, config.train, config.probe):
        check_bounds(section)
    check_grid(config.probe.heads, resolved_lrs(config.probe))
    return config


def run(args: argparse.Namespace) -> int:
    config = config_of(args)  # every mistake of the grid: one line, exit 2, before torch loads a model
    check_writable(args.out)
    from ..evaluate.features import format_table
    from ..train.probe_run import probe
    from ..train.run import RunLockedError
    from ..train.state import ResumeError

    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        result = probe(config)
    except (ResumeError, RunLockedError) as error:
        print(f"simpool probe: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("simpool probe: interrupted; run the same command again to resume (last.pt)", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if "heads" not in result:  # not the main process
        return 0
    rows = [
        (h["head"], f"{h['lr']:g}", h["params"], f"{h['gflops']:.3g}", h["holdout_top1"], h["test_top1"],
         h["test_top5"], h.get("MaxBoxAccV2", "-"), h.get("mask_mass", "-"))
        for h in result["heads"]
    ]  # fmt: skip
    header = ("head", "lr", "params", "GFLOPs", "held-out top1", "test top1", "test top5", "MaxBoxAccV2", "mask mass")
    print(format_table(rows, header))
    selected = result["selected"]
    print(
        f"selected on the held-out split: {selected['head']} lr {selected['lr']:g}: "
        f"test top-1 {selected['test_top1']:.2f}, top-5 {selected['test_top5']:.2f}"
    )
    if not result["finished"]:
        print("note: the run stopped before its last epoch (train.max_updates); run again to finish it")
    print(f"run folder: {result['run_dir']}")
    return 0
