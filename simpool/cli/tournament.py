"""``simpool tournament``: train one backbone with each pool under one budget and seed, and rank the pools."""

from __future__ import annotations

import argparse

from ..experiments.tournament import DATASETS, DEFAULT_POOLS, TournamentConfig, run_tournament, to_markdown
from .common import add_img_size, add_out, add_runtime, check_writable, device_of

EXAMPLE = """example:
  simpool tournament --out runs/tournament                       # every Table 1 pool, tiny ViT, bench
  simpool tournament --pools gap gem simpool "framework:attention=sigmoid" --steps 100 --out runs/t2
  simpool tournament --model tiny_resnet --dataset fashion-mnist --out runs/t3
Interrupted? Run the same command again: finished pools are kept and skipped.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TournamentConfig()
    parser.add_argument("--pools", nargs="+", default=list(DEFAULT_POOLS), help="pools, optionally name:key=value,...")
    add_out(parser, required=True, help="output folder (results.csv, results.md, results.png)")
    parser.add_argument("--model", default=defaults.model, help="tiny_vit, tiny_resnet or a create_model name")
    parser.add_argument("--dataset", default=defaults.dataset, choices=sorted(DATASETS))
    parser.add_argument("--steps", type=int, default=defaults.steps, help="optimisation steps per run")
    add_img_size(parser, default=defaults.image_size, help="bench image side in pixels")
    parser.add_argument("--train-images", type=int, default=defaults.train_images, help="training images")
    parser.add_argument("--test-images", type=int, default=defaults.test_images, help="test images for the accuracy")
    parser.add_argument("--depth", type=int, default=defaults.depth, help="blocks of tiny_vit")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="AdamW learning rate, cosine schedule")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="AdamW weight decay")
    add_runtime(parser, batch_size=defaults.batch_size, loader=False)  # --seed: initial weights, data order, bench


def run(args: argparse.Namespace) -> int:
    check_writable(args.out)
    fields = set(TournamentConfig.__dataclass_fields__) - {"image_size"}  # the others are spelled as their flags
    config = TournamentConfig(image_size=args.img_size, **{name: getattr(args, name) for name in fields})
    rows = run_tournament(args.pools, args.out, config, device_of(args), progress=not args.no_progress)
    print(to_markdown(rows), end="")
    return 0 if all(r["status"] == "ok" for r in rows) else 1
