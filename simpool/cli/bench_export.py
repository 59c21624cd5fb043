"""``simpool bench export``: write a bench variant in a standard layout, so every loader runs on it."""

from __future__ import annotations

import argparse

from ..data.bench import SPLITS, VARIANTS, BenchConfig
from ..data.bench_export import FORMATS, export
from .common import add_img_size, add_no_progress, add_out, add_seed, check_writable

EXAMPLE = (
    "example: simpool bench export --variant mixed_rand --format wsol --split test --num-images 500 --out out/wsol"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", default="original", choices=[*VARIANTS, "all"], help="'all': in9 only")
    parser.add_argument("--format", default="imagefolder", choices=sorted(FORMATS))
    parser.add_argument("--split", default="test", choices=SPLITS)
    add_out(parser, required=True, help="output folder")
    parser.add_argument("--num-images", type=int, default=None, help="the first N images of the split; unset: all")
    add_img_size(parser, default=BenchConfig.image_size, help="bench image side in pixels")
    parser.add_argument(
        "--bg-correlation",
        type=float,
        default=BenchConfig.bg_correlation,
        help="probability in [0, 1] that an original image's background comes from its class's own pool "
        "(0: the background says nothing of the class)",
    )
    add_seed(parser, default=BenchConfig.seed, help="seed of the bench")
    parser.add_argument("--fashion-mnist-dir", default=None, help="folder of the Fashion-MNIST IDX files")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an export in --out whose settings differ (deletes its files)"
    )
    add_no_progress(parser)


def run(args: argparse.Namespace) -> int:
    check_writable(args.out, kind="folder")
    config = BenchConfig(image_size=args.img_size, bg_correlation=args.bg_correlation, seed=args.seed)
    written = export(
        args.out,
        args.format,
        args.variant,
        args.split,
        config,
        args.num_images,
        args.fashion_mnist_dir,
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    for path in written:
        print(path)
    return 0
