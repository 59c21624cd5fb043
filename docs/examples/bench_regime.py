"""How much does an object's position give away on the SimPool bench? Image-independent maps scored on bench regimes.

Usage: python docs/examples/bench_regime.py --split val --out docs/results/bench_regime_val.json \
           --regime 0.45 0.8 0 --regime 0.3 0.5 0.25 ...

For each regime (smallest and largest object side, as fractions of the image side, and how far the object's square may
cross the border, as a fraction of its side: ``BenchConfig.overhang``), the first ``--images`` images of ``--split``
(``original`` variant) and the objects of the first ``--train-images`` training images give the scores of the maps
that ignore the image (:func:`simpool.evaluate.attention_quality.baseline_scores`: ``uniform``, ``centre``,
``box_prior``) on the ViT's patch grid. A regime where position gives nothing away has ``centre`` and ``box_prior``
within a few MaxBoxAccV2 points of ``uniform``. The regime is chosen on ``val``; ``test`` is then read once, to
report.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np

from simpool.data.bench import BenchConfig, SimPoolBench
from simpool.evaluate.attention_quality import baseline_scores
from simpool.utils import write_json

METRICS = ("MaxBoxAccV2", "PxAP", "CorLoc", "mask_mass")


def regime_scores(config: BenchConfig, split: str, images: int, train_images: int, patch_size: int) -> dict:
    """The three baselines' scores and the objects' mean area on ``split`` under ``config``."""
    data = SimPoolBench(split, "original", config, num_images=images)
    _, _, boxes, masks = data.batch(np.arange(len(data)))
    train = SimPoolBench("train", "original", config, num_images=train_images)
    train_masks = train.batch(np.arange(len(train)))[3].numpy()  # (M, S, S)
    grid = (config.image_size // patch_size,) * 2
    size = (config.image_size, config.image_size)
    scores = baseline_scores(
        grid, train_masks, [b[None] for b in boxes.numpy()], [size] * len(boxes), masks.numpy(), patch_size
    )
    rows = {name: {metric: s[metric] for metric in METRICS} for name, s in scores.items()}
    margin = max(rows["centre"]["MaxBoxAccV2"], rows["box_prior"]["MaxBoxAccV2"]) - rows["uniform"]["MaxBoxAccV2"]
    return {"baselines": rows, "object_area": float(masks.double().mean()), "margin_over_uniform": margin}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="val", choices=("val", "test"))
    parser.add_argument(
        "--regime", nargs=3, type=float, action="append", metavar=("MIN", "MAX", "OVERHANG"), required=True
    )
    parser.add_argument("--images", type=int, default=2000, help="evaluated images of the split")
    parser.add_argument("--train-images", type=int, default=2000, help="training objects of the box prior")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--patch-size", type=int, default=8)
    parser.add_argument("--out", default=None, help="write the scores as JSON here")
    args = parser.parse_args(argv)
    results = []
    for low, high, overhang in args.regime:
        config = BenchConfig(image_size=args.image_size, min_scale=low, max_scale=high, overhang=overhang)
        scores = regime_scores(config, args.split, args.images, args.train_images, args.patch_size)
        row = {"min_scale": low, "max_scale": high, "overhang": overhang, **scores}
        results.append(row)
        line = "  ".join(f"{name} {s['MaxBoxAccV2']:.1f}" for name, s in row["baselines"].items())
        pxap = "  ".join(f"{name} {s['PxAP']:.1f}" for name, s in row["baselines"].items())
        print(
            f"scale [{low}, {high}] overhang {overhang}: MaxBoxAccV2 {line}; margin {row['margin_over_uniform']:+.1f}"
        )
        print(f"    PxAP {pxap}", flush=True)
    if args.out:
        meta = {
            "command": "python " + " ".join(sys.argv),
            "machine": platform.node(),
            "date": time.strftime("%Y-%m-%d"),
        }
        write_json(args.out, {**meta, "split": args.split, "images": args.images, "regimes": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
