"""``simpool train-dino``: DINO self-supervised pre-training from a YAML recipe plus ``key=value`` overrides."""

from __future__ import annotations

import argparse

from .config import load_config
from .dino_config import DinoConfig

EXAMPLE = """examples:
  simpool bench export --layout imagefolder --out bench_export
  simpool train-dino --config configs/dino_bench_vit_tiny_simpool.yaml data.root=bench_export
  simpool train-dino --config configs/dino_vit_small_simpool.yaml data.root=/data/imagenet train.amp=fp16
  torchrun --nproc_per_node=8 -m simpool.cli train-dino --config configs/dino_resnet50_simpool.yaml \\
      data.root=/data/imagenet
  simpool train-dino --config configs/dino_convnext_small_simpool.yaml --print-config
The teacher backbone is written to <run folder>/teacher.safetensors; evaluate it with
  simpool eval knn --model vit_small_patch16_224 --pool simpool --checkpoint runs/<name>/teacher.safetensors ...
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML recipe (configs/dino_*.yaml); omitted: the dataclass defaults")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="dotted overrides read as YAML, e.g. optim.lr=1e-3 train.epochs=10 model.pool=default",
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if the run folder has last.pt")


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + (["train.resume=false"] if args.no_resume else [])
    try:
        config = load_config(DinoConfig, args.config, overrides)
    except (ValueError, FileNotFoundError) as error:
        print(f"simpool train-dino: {error}")
        return 2
    if args.print_config:
        import yaml

        from .config import to_dict

        print(yaml.safe_dump(to_dict(config), sort_keys=False), end="")
        return 0
    from .dino_train import train_dino  # torch, timm: only once the config is valid

    result = train_dino(config)
    print(f"run folder: {result['run_dir']}")
    print(f"teacher backbone: {result['run_dir']}/teacher.safetensors")
    return 0
