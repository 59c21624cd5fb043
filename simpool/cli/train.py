"""``simpool train``: supervised training from a YAML recipe plus ``key=value`` overrides."""

from __future__ import annotations

import argparse

from .recipe import add_recipe_arguments, resolve_config, run_recipe

EXAMPLE = """examples:
  simpool train --config configs/bench_vit_tiny_simpool.yaml train.epochs=2 data.bench_images=2000
  simpool train --config configs/resnet50_simpool.yaml data.root=/data/imagenet train.amp=bf16
  torchrun --nproc_per_node=8 -m simpool.cli train --config configs/vit_small_simpool.yaml data.root=/data/imagenet
  simpool train --config configs/vit_small_simpool.yaml --print-config   # show the resolved config and exit
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..train.supervised.config import SupervisedConfig  # torch and timm: not for --help
    from ..train.supervised.recipe import SupervisedRecipe

    config = resolve_config(args, SupervisedConfig)
    run_recipe(args, config, SupervisedRecipe)
    return 0
