"""``simpool train``: supervised training from a YAML recipe plus ``key=value`` overrides."""

from __future__ import annotations

import argparse

from .config import load_config
from .supervised_config import SupervisedConfig

EXAMPLE = """examples:
  simpool train --config configs/bench_vit_tiny_simpool.yaml train.epochs=2 data.bench_images=2000
  simpool train --config configs/resnet50_simpool.yaml data.root=/data/imagenet train.amp=bf16
  torchrun --nproc_per_node=8 -m simpool.cli train --config configs/vit_small_simpool.yaml data.root=/data/imagenet
  simpool train --config configs/vit_small_simpool.yaml --print-config   # show the resolved config and exit
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML recipe (configs/*.yaml); omitted: the dataclass defaults")
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
        config = load_config(SupervisedConfig, args.config, overrides)
    except (ValueError, FileNotFoundError) as error:
        print(f"simpool train: {error}")
        return 2
    if args.print_config:
        import yaml

        from .config import to_dict

        print(yaml.safe_dump(to_dict(config), sort_keys=False), end="")
        return 0
    from .supervised import train  # torch, timm: only once the config is valid

    result = train(config)
    print(f"run folder: {result['run_dir']}")
    return 0
