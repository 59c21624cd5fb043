"""``simpool eval finetune``: fine-tune a pre-trained model with a recipe (:func:`simpool.train.finetune.finetune`);
the best validation top-1 is written as a JSON result."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...train.config import load_config
from ...train.finetune import finetune
from ...train.supervised.config import SupervisedConfig
from ...utils import write_json
from ..common import add_out, check_writable

EXAMPLE = """examples:
  simpool eval finetune --config configs/finetune_vit_small_cifar10.yaml --checkpoint vits_simpool.safetensors \\
      data.root=/data/cifar10 model.pool=simpool
  simpool eval finetune --config configs/finetune_vit_small_flowers.yaml --checkpoint dino.pth \\
      --checkpoint-key teacher data.root=/data/flowers model.pool=default"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, help="fine-tuning recipe, e.g. configs/finetune_vit_small_cifar10.yaml"
    )
    parser.add_argument("--checkpoint", required=True, help="weights: ours, an official release or a timm state dict")
    parser.add_argument("--checkpoint-key", default=None, help="entry of a checkpoint dict (teacher, state_dict_ema)")
    add_out(parser, help="JSON result file; unset: <run folder>/finetune.json")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. data.root=/data")


def run(args: argparse.Namespace) -> int:
    check_writable(args.out)
    config = load_config(SupervisedConfig, args.config, list(args.overrides))
    result = finetune(config, args.checkpoint, args.checkpoint_key)
    out = Path(args.out) if args.out else Path(result["run_dir"]) / "finetune.json"
    write_json(out, result)
    best = f"best top-1 {result['best_top1']:.2f}%" if "best_top1" in result else "no validation yet"
    print(f"fine-tuned {config.model.name} ({config.model.pool}) from {args.checkpoint}: {best}  ->  {out}")
    return 0
