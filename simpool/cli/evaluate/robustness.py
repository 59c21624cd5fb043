"""``simpool eval robustness``: accuracy on ImageNet-9 variations and the BG-gap
(:func:`simpool.evaluate.robustness.evaluate_robustness`)."""

from __future__ import annotations

import argparse

from ...data.in9 import load_in9_mapping
from ...evaluate.features import format_table
from ...evaluate.robustness import evaluate_robustness
from ..common import add_data, add_img_size
from . import add_model_options, model_of, report

EXAMPLE = """examples:
  simpool eval robustness --data /data/bg_challenge --mapping /data/bg_challenge/in_to_in9.json \\
      --model resnet50 --pool simpool --checkpoint in1k.safetensors --out in9.json
  simpool eval robustness --data bench_in9 --model resnet18 --checkpoint bench.safetensors
The data folder holds <variation>/val/<class>/ folders. Without --mapping the model's outputs are the classes
themselves (9 for IN-9, 10 for the SimPool bench's export). Without a checkpoint, --num-classes defaults to the
mapping's size (or 9)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data(parser, help="folder of <variation>/val/<class>/ image folders")
    parser.add_argument("--variations", nargs="+", default=None, help="unset: every variation present")
    parser.add_argument("--mapping", default=None, help="in_to_in9.json for 1000-class models")
    add_img_size(parser, None, help="resize images to this side; unset: as stored (IN-9 is 224x224)")
    parser.add_argument("--in9-stats", action="store_true", help="normalise with IN-9 statistics (9-class models)")
    add_model_options(parser)


def run(args: argparse.Namespace) -> int:
    mapping = load_in9_mapping(args.mapping) if args.mapping else None
    if args.num_classes is None and not args.checkpoint:  # nothing to read it from: the classes themselves
        args.num_classes = len(mapping) if mapping is not None else 9
    model = model_of(args)
    result = evaluate_robustness(
        model,
        args.data,
        variations=args.variations,
        mapping=mapping,
        img_size=args.img_size,
        in9_stats=args.in9_stats,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.no_progress,
    )
    rows = list(result["accuracy"].items()) + ([("BG-gap", result["bg_gap"])] if "bg_gap" in result else [])
    return report(args, "robustness", format_table(rows, ("variation", "accuracy %")), result)
