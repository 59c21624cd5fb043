"""``simpool eval retrieval``: ROxford/RParis mAP (:func:`simpool.evaluate.retrieval.evaluate_retrieval`)."""

from __future__ import annotations

import argparse

from ...data.revisitop import DATASETS
from ...evaluate.features import format_table
from ...evaluate.retrieval import DEFAULT_IMG_SIZE, evaluate_retrieval
from ..common import add_data, add_img_size
from . import add_model_options, model_of, report

EXAMPLE = """example:
  simpool eval retrieval --data /data/revisitop --dataset roxford5k --model vit_small_patch16_224 \\
      --model-kwargs dynamic_img_size=true dynamic_img_pad=true --checkpoint dino_simpool.safetensors \\
      --checkpoint-key teacher --out roxford.json
The data folder holds <dataset>/gnd_<dataset>.pkl and <dataset>/jpg/*.jpg. Images go one at a time at their
own aspect ratio, so ViTs need dynamic_img_size=true (and dynamic_img_pad=true: sizes not a multiple of the
patch are padded, where DINO's ViT drops the remainder)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data(parser, help="folder holding <dataset>/gnd_<dataset>.pkl and jpg/")
    parser.add_argument("--dataset", choices=DATASETS, required=True)
    sizes = ", ".join(f"{size} {name}" for name, size in DEFAULT_IMG_SIZE.items())
    add_img_size(parser, None, help=f"longer side of every image; unset: {sizes}")
    parser.add_argument("--multiscale", action="store_true", help="average features at scales 1, 1/sqrt(2), 1/2")
    parser.add_argument("--no-query-crop", action="store_true", help="whole query images (DINO's script)")
    add_model_options(parser, batch_size=None, loader=False)  # images go one at a time, at their own size


def run(args: argparse.Namespace) -> int:
    results = evaluate_retrieval(
        model_of(args),
        args.data,
        args.dataset,
        args.img_size,
        args.multiscale,
        not args.no_query_crop,
        not args.no_progress,
    )
    header = ("protocol", "mAP %", *(f"mP@{k} %" for k in results["medium"]["mP@k"]))
    table = format_table([(p, r["mAP"], *r["mP@k"].values()) for p, r in results.items()], header)
    size = args.img_size or DEFAULT_IMG_SIZE[args.dataset]
    settings = {"dataset": args.dataset, "img_size": size, "multiscale": args.multiscale}
    return report(args, "retrieval", table, {**settings, "results": results})
