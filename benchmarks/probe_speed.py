"""Wall time of ``simpool probe``: the heads of a grid in one pass against one run per head (issue 16).

For each mode (images through the backbone every epoch, and ``--cache``), the whole probe run with every head
in one grid is timed against a separate one-head run of each head, same data, epochs and seed, one after the
other in this process (so the ratios compare runs on the same machine at the same time). Each run is the whole
protocol as a user runs it: building the backbone, training (1 epoch by default), the held-out and test
evaluations and the per-head FLOP counts; ``train_s`` is the training epoch alone (from ``log.csv``).
Goal (issue 16): one pass costs at most 1.5x one head's run when the backbone dominates (ViT-S at 224).

Usage:
    python benchmarks/probe_speed.py                                   # ViT-S/16 at 224, 40 + 10 bench images
    python benchmarks/probe_speed.py --images 80 --test-images 20 --epochs 2 --out outputs/probe_speed.json
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simpool.data.bench_export import export  # noqa: E402
from simpool.pooling import list_pools  # noqa: E402
from simpool.train.config import from_dict  # noqa: E402
from simpool.train.probe.config import ProbeConfig  # noqa: E402
from simpool.train.probe.run import probe  # noqa: E402
from simpool.utils import write_json  # noqa: E402

HEADS = ["linear", "simpool", "ep", "map", "abmilp", "aim", "jepa", "cait"]


def run_once(args, data: Path, out: Path, heads: list[str], cache: bool) -> dict:
    config = from_dict(
        ProbeConfig,
        {
            "model": {"name": args.model},
            "data": {"root": str(data), "val_split": "test", "img_size": args.img_size, "num_workers": args.workers},
            "train": {
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "device": args.device,
                "seed": 0,
                "output": str(out.parent),
                "name": out.name,
                "progress": False,
                "resume": False,
            },
            "probe": {"heads": heads, "lrs": [1e-3], "cache": cache, "figure_images": 0},
        },
    )
    start = time.perf_counter()
    probe(config)
    wall = time.perf_counter() - start
    with open(out / "log.csv", newline="") as file:
        train = sum(float(row["time_s"]) for row in csv.DictReader(file))
    return {"wall_s": wall, "train_s": train}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_small_patch16_224")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--images", type=int, default=40, help="training images (10%% of them held out)")
    parser.add_argument("--test-images", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--heads", nargs="+", default=HEADS, help="registered pools; missing ones are skipped")
    parser.add_argument("--modes", nargs="+", default=["images", "cache"], choices=("images", "cache"))
    parser.add_argument("--out", default=None, help="JSON file of the figures")
    args = parser.parse_args()
    heads = [h for h in args.heads if h == "linear" or h in list_pools()]
    skipped = sorted(set(args.heads) - set(heads))
    if skipped:
        print(f"note: not registered, skipped: {', '.join(skipped)}")
    report = {
        "command": "python " + " ".join(sys.argv),
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''} torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, " + (torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"),
        "heads": heads,
        "modes": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        export(root / "bench", "imagefolder", split="train", num_images=args.images, progress=False)
        export(root / "bench", "imagefolder", split="test", num_images=args.test_images, progress=False)
        for mode in args.modes:
            cache = mode == "cache"
            grid = run_once(args, root / "bench", root / f"grid-{mode}", heads, cache)
            singles = {h: run_once(args, root / "bench", root / f"{h}-{mode}", [h], cache) for h in heads}
            single_wall = [s["wall_s"] for s in singles.values()]
            single_train = [s["train_s"] for s in singles.values()]
            figures = {
                "grid": grid,
                "singles": singles,
                "sum_singles_wall_s": sum(single_wall),
                "grid_over_mean_single_wall": grid["wall_s"] / (sum(single_wall) / len(single_wall)),
                "grid_over_mean_single_train": grid["train_s"] / (sum(single_train) / len(single_train)),
                "speedup_vs_separate_runs": sum(single_wall) / grid["wall_s"],
            }
            report["modes"][mode] = figures
            print(
                f"{mode:>6}: one pass of {len(heads)} heads {grid['wall_s']:.1f} s (training {grid['train_s']:.1f} s); "
                f"{len(heads)} one-head runs {sum(single_wall):.1f} s in all; one pass / one head's run = "
                f"{figures['grid_over_mean_single_wall']:.2f}x (training alone "
                f"{figures['grid_over_mean_single_train']:.2f}x); speed-up {figures['speedup_vs_separate_runs']:.2f}x"
            )
            for head, single in singles.items():
                print(f"        {head:<8} {single['wall_s']:6.1f} s  (training {single['train_s']:.1f} s)")
    if args.out:
        write_json(args.out, report)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
