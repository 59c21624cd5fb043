"""``simpool eval linear``: a linear probe on frozen features (:func:`simpool.train.probe.linear.linear_probe`)."""

from __future__ import annotations

import argparse

from ...evaluate.features import format_table
from ...train.probe.linear import linear_probe
from ..common import add_data, add_img_size
from . import add_model_options, model_of, report

EXAMPLE = """examples:
  simpool eval linear --data /data/imagenet --model vit_small_patch16_224 --checkpoint dino.safetensors \\
      --checkpoint-key teacher --batch-size 1024 --epochs 100 --out linear.json
  simpool eval linear --data /data/imagenet --model vit_small_patch16_224 --checkpoint dino.safetensors \\
      --checkpoint-key teacher --cached --lrs 0.0001 0.001 0.01 0.1 --epochs 100 --out linear_grid.json
The data folder holds train/ and val/ ImageFolder layouts. --cached extracts training features once without
augmentation and trains the grid of heads on them."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data(parser, help="folder with train/ and val/ ImageFolder layouts")
    parser.add_argument("--train-split", default="train", help="training sub-folder of --data")
    parser.add_argument("--val-split", default="val", help="evaluation sub-folder (the bench exports 'test')")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.001], help="base learning rates (x batch/256)")
    parser.add_argument("--cached", action="store_true", help="train on cached features, no augmentation")
    parser.add_argument("--resize", type=int, default=256, help="short side before the evaluation center crop")
    add_img_size(parser, help="crop side (random-resized in training, centered in evaluation)")
    add_model_options(parser)


def run(args: argparse.Namespace) -> int:
    result = linear_probe(
        model_of(args),
        args.data,
        train_split=args.train_split,
        val_split=args.val_split,
        lrs=args.lrs,
        epochs=args.epochs,
        cached=args.cached,
        resize=args.resize,
        img_size=args.img_size,
        batch_size=args.batch_size,
        workers=args.workers,
        seed=args.seed,
        progress=not args.no_progress,
    )
    rows = [(f"{h['lr']:g}", h["best_top1"], h["best_epoch"], h["final_top1"]) for h in result["heads"]]
    table = format_table(rows, ("base lr", "best top1 %", "best epoch", "final top1 %"))
    settings = {"cached": args.cached, "epochs": args.epochs, "batch_size": args.batch_size}
    return report(args, "linear", table, {**settings, **result})
