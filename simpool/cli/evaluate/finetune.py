"""``simpool eval finetune``: fine-tune a pre-trained model with a recipe
(:class:`simpool.train.finetune.FinetuneRecipe`); the best validation top-1 is written as a JSON result."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..common import add_out, check_writable
from ..recipe import add_recipe_arguments, resolve_config, run_recipe

EXAMPLE = """examples:
  simpool eval finetune --config configs/finetune_vit_small_cifar10.yaml --checkpoint vits_simpool.safetensors \\
      data.root=/data/cifar10 model.pool=simpool
  simpool eval finetune --config configs/finetune_vit_small_flowers.yaml --checkpoint dino.pth \\
      --checkpoint-key teacher data.root=/data/flowers model.pool=default"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_arguments(parser, recipes="configs/finetune_*.yaml", example="data.root=/data/cifar10 train.epochs=10")
    parser.add_argument("--checkpoint", required=True, help="weights: ours, an official release or a timm state dict")
    parser.add_argument("--checkpoint-key", default=None, help="entry of a checkpoint dict (teacher, state_dict_ema)")
    add_out(parser, help="JSON result file; unset: <run folder>/finetune.json")


def run(args: argparse.Namespace) -> int:
    from ...train.finetune import FinetuneRecipe, with_checkpoint
    from ...train.supervised.config import SupervisedConfig
    from ...utils import write_json

    check_writable(args.out, kind="file")
    config = with_checkpoint(resolve_config(args, SupervisedConfig), args.checkpoint, args.checkpoint_key)
    result = run_recipe(args, config, FinetuneRecipe)
    if result is None:  # --print-config
        return 0
    out = Path(args.out) if args.out else Path(result["run_dir"]) / "finetune.json"
    write_json(out, result)
    best = f"best top-1 {result['best_top1']:.2f}%" if "best_top1" in result else "no validation yet"
    print(f"fine-tuned {config.model.name} ({config.model.pool}) from {args.checkpoint}: {best}  ->  {out}")
    return 0
