"""``simpool convert``: an official (or our own) checkpoint -> a clean safetensors file of ours."""

from __future__ import annotations

import argparse
import json

from ..models.convert import convert
from ..models.layouts import LAYOUTS
from ..models.official import PRESETS
from .common import add_out, check_writable

EXAMPLE = (
    "example: simpool convert --checkpoint vits_dino_simpool_ep100.pth --out vits_dino.safetensors "
    "--preset vit_small_dino"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint to read (.pth, .pth.tar, .safetensors)")
    parser.add_argument(
        "--checkpoint-key",
        default=None,
        help="entry of a checkpoint dict; unset: state_dict, model, teacher or student",
    )
    add_out(parser, required=True, help="safetensors file to write")
    parser.add_argument(
        "--layout", default=None, choices=list(LAYOUTS), help="key layout; unset: detected from the keys"
    )
    parser.add_argument(
        "--preset", default=None, choices=sorted(PRESETS), help="check by loading strictly into this official model"
    )


def run(args: argparse.Namespace) -> int:
    check_writable(args.out, kind="file")
    summary = convert(args.checkpoint, args.out, key=args.checkpoint_key, layout=args.layout, preset=args.preset)
    print(json.dumps(summary, indent=2))
    return 0
