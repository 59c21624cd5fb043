"""``simpool eval segmentation``: linear segmentation on frozen patch features
(:func:`simpool.train.probe.segmentation.segmentation_probe`)."""

from __future__ import annotations

import argparse

from ...evaluate.features import format_table
from ...train.probe.segmentation import segmentation_probe
from ..common import add_data, add_img_size, check_blocks, check_option
from . import add_model_options, model_of, report

EXAMPLE = """example:
  simpool eval segmentation --data /data/ade/ADEChallengeData2016 --model vit_small_patch16_224 \\
      --model-kwargs dynamic_img_size=true --checkpoint dino.safetensors --checkpoint-key teacher \\
      --blocks 3 5 7 11 --iterations 160000 --lr 3e-5 --batch-size 16 --out ade20k.json
The data folder holds images/{training,validation}/*.jpg and annotations/{training,validation}/*.png
(0 = other)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data(parser, help="ADEChallengeData2016 layout")
    parser.add_argument("--num-seg-classes", type=int, default=150)
    parser.add_argument("--blocks", type=int, nargs="+", default=[3, 5, 7, 11], help="0-based block indices")
    parser.add_argument("--iterations", type=int, default=160000)
    parser.add_argument("--warmup", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=3e-5, help="AdamW learning rate (iBOT ViT-S: 3e-5)")
    add_img_size(parser, 512, help="training crop and test short side")
    parser.add_argument("--no-reduce-zero-label", action="store_true", help="label 0 is a class, not 'other'")
    parser.add_argument("--train-split", default="training")
    parser.add_argument("--val-split", default="validation")
    add_model_options(parser, batch_size=16)


def run(args: argparse.Namespace) -> int:
    check_option("--num-seg-classes", args.num_seg_classes, "[1, inf)")
    check_option("--iterations", args.iterations, "[1, inf)")
    check_option("--warmup", args.warmup, "[0, inf)")
    check_option("--lr", args.lr, "(0, inf)")
    model = model_of(args)
    check_blocks(model, args.blocks)
    metrics = segmentation_probe(
        model,
        args.data,
        blocks=args.blocks,
        num_classes=args.num_seg_classes,
        iterations=args.iterations,
        warmup=args.warmup,
        lr=args.lr,
        img_size=args.img_size,
        batch_size=args.batch_size,
        reduce_zero=not args.no_reduce_zero_label,
        train_split=args.train_split,
        val_split=args.val_split,
        seed=args.seed,
        progress=not args.no_progress,
    )
    table = format_table([(metrics["mIoU"], metrics["mAcc"], metrics["aAcc"])], ("mIoU %", "mAcc %", "aAcc %"))
    return report(args, "segmentation", table, {"blocks": args.blocks, "iterations": args.iterations, **metrics})
