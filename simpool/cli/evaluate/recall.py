"""``simpool eval recall``: Recall@k on CUB, Cars, SOP, In-Shop (:func:`simpool.evaluate.recall.evaluate_recall`)."""

from __future__ import annotations

import argparse

from ...data.recall_datasets import READERS
from ...evaluate.features import format_table
from ...evaluate.recall import evaluate_recall
from ..common import add_data, add_img_size
from . import add_model_options, model_of, report

EXAMPLE = """example:
  simpool eval recall --dataset cub --data /data --model resnet50 --pool simpool --checkpoint cub.safetensors \\
      --out cub_recall.json
Layouts: <data>/CUB_200_2011/images/, <data>/cars196/cars_annos.mat, <data>/Stanford_Online_Products/Ebay_test.txt,
<data>/Inshop_Clothes/Eval/list_eval_partition.txt (the evaluation splits of Proxy-Anchor)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=sorted(READERS), required=True)
    add_data(parser, help="folder holding the dataset's own folder")
    parser.add_argument("--ks", type=int, nargs="+", default=None, help="k values; unset: the dataset's usual")
    parser.add_argument("--resize", type=int, default=256, help="short side before the center crop (bilinear)")
    add_img_size(parser, help="center crop side")
    add_model_options(parser)


def run(args: argparse.Namespace) -> int:
    results = evaluate_recall(
        model_of(args),
        args.data,
        args.dataset,
        ks=args.ks,
        resize=args.resize,
        img_size=args.img_size,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.no_progress,
    )
    table = format_table([(f"R@{k}", r) for k, r in results.items()], ("k", "recall %"))
    return report(args, "recall", table, {"dataset": args.dataset, "results": results})
