"""``simpool probe``: attentive probing of a frozen backbone, every head x learning rate in one pass
(:class:`simpool.train.probe.run.ProbeRecipe`)."""

from __future__ import annotations

import argparse
import os
import re

from ..utils import parse_kv
from .common import add_data, add_img_size, add_model, add_out, add_runtime, check_writable
from .recipe import add_overrides, resolve_config, run_recipe

EXAMPLE = """examples:
  simpool probe --model vit_small_patch16_224 --checkpoint backbone.safetensors --data /data/imagenet \\
      --heads linear simpool ep map abmilp --lr 1e-3 3e-3 1e-2 --epochs 90 --out runs/probe
  simpool probe --model vit_small_patch16_224 --checkpoint mae.safetensors --data /data/imagenet \\
      --heads linear ep --opt lars --batch-size 4096 --cache --out runs/probe_lars     # efficient-probing's protocol
  simpool probe --model vit_small_patch16_224 --data /data/imagenet --out runs/probe \\
      probe.attention_images=200 train.max_updates=10 data.auto_augment=rand-m9-mstd0.5-inc1   # any config field
  torchrun --nproc_per_node=8 -m simpool.cli probe --model vit_base_patch16_224 --data /data/imagenet ...
--data holds the training split and the test split as ImageFolder layouts (class folders). The best head x lr is
chosen on a held-out part of the training split (--holdout), then its test top-1/top-5 is reported. Heads:
'linear' (CLS token, or GAP) or any pool name of `simpool landscape`. The run folder (--out) holds
results.json, probe.png (accuracy vs GFLOPs) and, where the test split has boxes (a `simpool bench export
--format wsol` folder: --data OUT/dataset), each head's attention scores (MaxBoxAccV2; PxAP and mask mass with
masks) beside the image-independent baselines (uniform, centre, box prior, each head's mean map), attention.png
and attention_maps.npz. Running the same command again resumes an interrupted run."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data(parser, help="ImageFolder root holding the training split and the test split")
    parser.add_argument("--train-split", default="train", help="training sub-folder of --data (held-out part cut)")
    parser.add_argument("--test-split", default="val", help="test sub-folder of --data (the bench exports 'test')")
    parser.add_argument("--heads", nargs="+", default=["linear", "simpool"], help="'linear' or pool names")
    parser.add_argument(
        "--lr", nargs="+", default=None, metavar="LR", help="base learning rates (x batch/256); unset: 1e-3, LARS 0.1"
    )
    parser.add_argument("--opt", default="adamw", choices=("adamw", "lars", "sgd"), help="optimizer of every head")
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
        help="a head's pool arguments: aim.num_heads=6",
    )
    parser.add_argument("--amp", default="none", choices=("none", "bf16", "fp16", "auto"), help="mixed precision")
    add_img_size(parser)
    add_model(parser, pool="default")
    add_runtime(parser, batch_size=256)
    add_out(parser, default="runs/probe", help="run folder (results.json, figures, last.pt)")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if the run folder has last.pt")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    add_overrides(parser, example="probe.attention_images=200 train.max_updates=10")


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


LIST_OPTIONS = ("heads", "lr", "head_kwargs", "pool_kwargs", "model_kwargs")  # options that take several words
SECTIONS = ("model", "data", "train", "probe")  # ProbeConfig's sections
OVERRIDE = re.compile(rf"^({'|'.join(SECTIONS)})\.[^=]+=")  # a word `section.key=value`


def take_back_overrides(args: argparse.Namespace) -> None:
    """Overrides written right after a list option (``--heads linear simpool train.epochs=1``) are taken by it,
    argparse being greedy: move them back to the overrides (no head, lr or pool argument looks like one)."""
    moved = []
    for name in LIST_OPTIONS:
        words = getattr(args, name)
        if words:
            moved += [word for word in words if OVERRIDE.match(word)]
            setattr(args, name, [word for word in words if not OVERRIDE.match(word)])
    args.overrides = moved + list(args.overrides)


def flags_of(args: argparse.Namespace) -> dict:
    """The config values the options set (the ``key=value`` overrides come on top)."""
    out = os.path.abspath(args.out)
    return {
        "model": {
            "name": args.model,
            "pool": args.pool,
            "pool_kwargs": parse_kv(args.pool_kwargs),
            "kwargs": parse_kv(args.model_kwargs),
            "checkpoint": args.checkpoint or "",
            "checkpoint_key": args.checkpoint_key,
        },
        "data": {
            "root": args.data,
            "train_split": args.train_split,
            "val_split": args.test_split,
            "img_size": args.img_size,
            "num_workers": args.workers,
        },
        "train": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "amp": args.amp,
            "device": args.device or "auto",
            "seed": args.seed,
            "output": os.path.dirname(out),
            "name": os.path.basename(out),
            "progress": not args.no_progress,
        },
        "probe": {
            "heads": list(args.heads),
            "lrs": parse_lrs(args.lr),
            "opt": args.opt,
            "weight_decay": args.weight_decay,
            "blocks": args.blocks,
            "blocks_mode": args.blocks_mode,
            "with_cls": args.with_cls,
            "holdout": args.holdout,
            "cache": args.cache,
            "metadata": args.metadata or "",
            "head_kwargs": parse_head_kwargs(args.head_kwargs),
        },
    }


def run(args: argparse.Namespace) -> int:
    from ..train.probe.config import ProbeConfig

    take_back_overrides(args)
    config = resolve_config(args, ProbeConfig, base=flags_of(args))
    check_writable(args.out)
    from ..train.probe.report import attention_lines, baselines_table, heads_table, selection_line
    from ..train.probe.run import ProbeRecipe

    result = run_recipe(args, config, ProbeRecipe)  # every mistake of the grid: one line, exit 2, before any work
    if not result or "heads" not in result:  # --print-config, or not the main process
        return 0
    print(heads_table(result))
    print(selection_line(result))
    if "baselines" in result:
        print(baselines_table(result))
        print("\n".join(attention_lines(result)))
    if not result["finished"]:
        print("note: the run stopped before its last epoch (train.max_updates); run again to finish it")
    return 0
