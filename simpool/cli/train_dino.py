"""``simpool train-dino``: DINO self-supervised pre-training from a YAML recipe plus ``key=value`` overrides."""

from __future__ import annotations

import argparse

from ..train.dino.config import DinoConfig
from .recipe import add_recipe_arguments, resolve_config, run_recipe

EXAMPLE = """examples:
  simpool bench export --format imagefolder --split train --out bench_export
  simpool bench export --format imagefolder --split val --out bench_export
  simpool train-dino --config configs/dino_bench_vit_tiny_simpool.yaml data.root=bench_export
  simpool train-dino --config configs/dino_vit_small_simpool.yaml data.root=/data/imagenet train.amp=fp16
  torchrun --nproc_per_node=8 -m simpool.cli train-dino --config configs/dino_resnet50_simpool.yaml \\
      data.root=/data/imagenet
  simpool train-dino --config configs/dino_convnext_small_simpool.yaml --print-config
The teacher backbone is written to <run folder>/teacher.safetensors; evaluate it with
  simpool eval knn --model vit_small_patch16_224 --pool simpool --checkpoint runs/<name>/teacher.safetensors ...
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_arguments(parser, "configs/dino_*.yaml")


def run(args: argparse.Namespace) -> int:
    from ..train.dino.recipe import DinoRecipe

    result = run_recipe(args, resolve_config(args, DinoConfig), DinoRecipe)
    if result is not None:
        print(f"teacher backbone: {result['run_dir']}/teacher.safetensors")
    return 0
