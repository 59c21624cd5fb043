"""``simpool validate``: top-1 and top-5 of a trained checkpoint on an ImageFolder split."""

from __future__ import annotations

import argparse

from ..train.supervised.validate import validate_checkpoint
from ..utils import write_json
from .common import add_data, add_out, add_runtime, check_writable, device_of

EXAMPLE = """examples:
  simpool validate --checkpoint runs/vit_small_patch16_224-simpool/best.safetensors --data /data/imagenet
  simpool validate --checkpoint best_ema.safetensors --config runs/x/config.yaml --data bench_export --split val
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="weights (.safetensors, or .pt read with weights_only)")
    add_data(parser, help="dataset root holding the split folder (ImageFolder layout)")
    parser.add_argument("--split", default="val", help="split folder under --data")
    parser.add_argument("--config", help="the run's config.yaml; unset: config.yaml beside the checkpoint")
    add_out(parser, help="also write the result as JSON here")
    add_runtime(parser, batch_size=128, seed=False)  # --workers: up to 4, at most the CPU count


def run(args: argparse.Namespace) -> int:
    check_writable(args.out, kind="file")
    result = validate_checkpoint(
        args.checkpoint,
        args.data,
        args.split,
        args.config,
        args.batch_size,
        args.workers,
        device_of(args),
        progress=not args.no_progress,
    )  # a missing file or a wrong config: one line on stderr, exit 2 (simpool.cli.main)
    print(
        f"top1 {result['top1']:.2f}  top5 {result['top5']:.2f}  loss {result['loss']:.4f}  "
        f"images {result['images']}  skipped {result['skipped']}"
    )
    if args.out:
        write_json(args.out, result)
    return 0
