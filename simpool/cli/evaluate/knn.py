"""``simpool eval knn``: weighted k-NN of frozen features (:func:`simpool.evaluate.knn.evaluate_knn`)."""

from __future__ import annotations

import argparse

from ...evaluate.features import format_table
from ...evaluate.knn import evaluate_knn
from ..common import add_data, add_img_size
from . import add_model_options, model_of, report

EXAMPLE = """example:
  simpool eval knn --data /data/imagenet --model vit_small_patch16_224 --pool simpool \\
      --checkpoint dino_simpool.safetensors --checkpoint-key teacher --nb-knn 10 20 --out knn.json
The data folder holds train/ and val/ ImageFolder layouts (one folder per class)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data(parser, help="folder with train/ and val/ ImageFolder layouts")
    parser.add_argument("--train-split", default="train", help="training sub-folder of --data")
    parser.add_argument("--val-split", default="val", help="evaluation sub-folder (the bench exports 'test')")
    parser.add_argument("--nb-knn", type=int, nargs="+", default=[10, 20], help="values of k")
    parser.add_argument("--temperature", type=float, default=0.07)
    parser.add_argument("--resize", type=int, default=256, help="short side before the center crop (bicubic)")
    add_img_size(parser, help="center crop side")
    add_model_options(parser)


def run(args: argparse.Namespace) -> int:
    results = evaluate_knn(
        model_of(args),
        args.data,
        train_split=args.train_split,
        val_split=args.val_split,
        ks=args.nb_knn,
        temperature=args.temperature,
        resize=args.resize,
        img_size=args.img_size,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.no_progress,
    )
    table = format_table([(k, r["top1"], r["top5"]) for k, r in results.items()], ("k", "top1 %", "top5 %"))
    return report(args, "knn", table, {"results": results})
