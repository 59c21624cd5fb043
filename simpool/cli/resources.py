"""``simpool resources``: parameters and GMACs of models, baseline and any pool (paper Table 8)."""

from __future__ import annotations

import argparse

from ..analysis.resources import format_table, resources_table
from ..utils import write_json
from .common import add_img_size, add_out, check_option, check_writable

EXAMPLE = "example: simpool resources --model resnet50 vit_small_patch16_224 --pool default simpool --out table8.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", nargs="+", default=["resnet18"], help="timm model names")
    parser.add_argument("--pool", nargs="+", default=["default", "simpool"], help="pool names, 'default' = timm's own")
    add_img_size(parser)
    parser.add_argument("--num-classes", type=int, default=1000, help="classifier outputs")
    parser.add_argument("--gamma", type=float, default=None, help="SimPool gamma; unset: the family's")
    add_out(parser, help="also write the rows to this JSON file")


def run(args: argparse.Namespace) -> int:
    check_option("--model", args.model, unique=True)
    check_option("--pool", args.pool, unique=True)
    check_option("--num-classes", args.num_classes, "[0, inf)")
    check_writable(args.out, kind="file")
    try:
        rows = resources_table(args.model, args.pool, args.img_size, args.num_classes, args.gamma)
    except (RuntimeError, AssertionError) as error:  # a convolution or patch larger than the image
        reason = str(error).strip().splitlines()[0]
        raise ValueError(f"--img-size {args.img_size} is too small for {', '.join(args.model)}: {reason}") from None
    print(format_table(rows))
    if args.out:
        write_json(args.out, rows)
    return 0
