"""SimPool bench generation speed: images per second on one CPU core, per variant and image size.

Run: ``python benchmarks/bench_speed.py [--sizes 64 224] [--num-images 4000] [--out FILE.json]``. The issue's target
is at least 2,000 images/s at 64x64 on one core (``render``: image, mask and box, no tensor conversion).
"""

from __future__ import annotations

import argparse
import time

import torch
from record import record_head, write_record

from simpool.data.bench import VARIANTS, BenchConfig, SimPoolBench


def images_per_second(variant: str, image_size: int, num_images: int) -> float:
    data = SimPoolBench("train", variant, BenchConfig(image_size=image_size), num_images=num_images)
    data.render(0)  # load the objects and the background bank outside the timing
    start = time.perf_counter()
    for i in range(num_images):
        data.render(i)
    return num_images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--num-images", type=int, default=4000)
    parser.add_argument("--out", default=None, help="write the rates as JSON here, with the command, machine and load")
    args = parser.parse_args()
    head = record_head()
    torch.set_num_threads(1)
    print("| variant | " + " | ".join(f"{s}x{s} img/s" for s in args.sizes) + " |")
    print("|---" * (len(args.sizes) + 1) + "|")
    rows = []
    for variant in VARIANTS:
        rates = [images_per_second(variant, size, args.num_images) for size in args.sizes]
        rows.append({"variant": variant, "images_per_second": dict(zip(map(str, args.sizes), rates, strict=True))})
        print(f"| {variant} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |")
    if args.out:
        write_record(args.out, head, {"num_images": args.num_images, "sizes": args.sizes, "rows": rows})


if __name__ == "__main__":
    main()
