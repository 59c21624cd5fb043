"""``simpool eval finetune``: fine-tune a pre-trained model on an ImageFolder dataset (paper Table 4).

A thin layer over ``simpool train``: the recipe's model starts from ``--checkpoint`` (ours or an
official SimPool release, every weight but the classifier's), then trains with the recipe; the best
validation top-1 is written as a JSON result.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..utils import write_json
from .config import load_config
from .supervised.config import SupervisedConfig
from .supervised.recipe import train

EXAMPLE = """examples:
  simpool eval finetune --config configs/finetune_vit_small_cifar10.yaml --checkpoint vits_simpool.safetensors \\
      data.root=/data/cifar10 model.pool=simpool
  simpool eval finetune --config configs/finetune_vit_small_flowers.yaml --checkpoint dino.pth \\
      --checkpoint-key teacher data.root=/data/flowers model.pool=default"""


def finetune(config: SupervisedConfig, checkpoint: str, checkpoint_key: str | None = None) -> dict:
    """Fine-tune from ``checkpoint`` with ``config``; returns the last log row with ``best_top1``."""
    config.model.checkpoint, config.model.checkpoint_key = checkpoint, checkpoint_key
    result = train(config)
    return {**result, "checkpoint": checkpoint}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, help="fine-tuning recipe, e.g. configs/finetune_vit_small_cifar10.yaml"
    )
    parser.add_argument("--checkpoint", required=True, help="pre-trained weights (safetensors or a torch file)")
    parser.add_argument("--checkpoint-key", default=None, help="entry of the checkpoint dict (teacher, state_dict_ema)")
    parser.add_argument("--out", default=None, help="JSON result file (default: <run folder>/finetune.json)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. data.root=/data")


def run(args: argparse.Namespace) -> int:
    config = load_config(SupervisedConfig, args.config, list(args.overrides))
    result = finetune(config, args.checkpoint, args.checkpoint_key)
    out = Path(args.out) if args.out else Path(result["run_dir"]) / "finetune.json"
    write_json(out, result)
    print(
        f"fine-tuned {config.model.name} ({config.model.pool}) from {args.checkpoint}: "
        f"best top-1 {result['best_top1']:.2f}%  ->  {out}"
    )
    return 0
