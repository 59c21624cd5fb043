"""PxAP against wsolevaluation itself: the same number on random maps and masks.

Needs a checkout of clovaai/wsolevaluation (not part of this repository) and its ``munch`` dependency:

    git clone https://github.com/clovaai/wsolevaluation /tmp/wsolevaluation && pip install munch
    python benchmarks/reference_pxap.py --wsolevaluation /tmp/wsolevaluation --out docs/results/pxap_parity.json

The reference's ``MaskEvaluator`` is imported from the checkout at run time (nothing of it is copied here); its
metadata loading is bypassed: the masks are handed to ``accumulate`` through its ``get_mask``, and the maps are
resized and normalised to the masks as ``simpool.evaluate.localization.pxap`` does (the reference's
``inference.py`` does the same at 224x224). Prints both values per case and exits non-zero when any differs.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

from simpool.evaluate.pixel_ap import pxap
from simpool.evaluate.scoremaps import normalize_scoremap, resize_scoremap
from simpool.utils import write_json

CASES = [  # (images, map side, mask side, interval, seed)
    (20, 14, 224, 0.01, 0),
    (20, 7, 224, 0.001, 1),
    (50, 16, 64, 0.01, 2),
    (10, 224, 224, 0.05, 3),
]


def random_case(images: int, side: int, mask_side: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random maps ``(N, side, side)`` and random rectangles and blobs as masks ``(N, S, S)``."""
    rng = np.random.default_rng(seed)
    maps = rng.random((images, side, side)) ** 2
    masks = np.zeros((images, mask_side, mask_side), dtype=np.uint8)
    for mask in masks:
        x0, y0 = rng.integers(0, mask_side // 2, 2)
        x1, y1 = x0 + rng.integers(2, mask_side // 2, 2)
        mask[y0:y1, x0:x1] = 1
        mask[rng.random(mask.shape) < 0.05] ^= 1  # ragged edges and holes
    return maps, masks


def reference_pxap(reference, maps: np.ndarray, masks: np.ndarray, interval: float) -> float:
    evaluator = reference.MaskEvaluator.__new__(reference.MaskEvaluator)  # no metadata files: set what it reads
    evaluator.cam_threshold_list = list(np.arange(0, 1, interval))
    evaluator.num_bins = len(evaluator.cam_threshold_list) + 2
    evaluator.threshold_list_right_edge = np.append(evaluator.cam_threshold_list, [1.0, 2.0, 3.0])
    evaluator.gt_true_score_hist = np.zeros(evaluator.num_bins, dtype=float)
    evaluator.gt_false_score_hist = np.zeros(evaluator.num_bins, dtype=float)
    evaluator.mask_root, evaluator.mask_paths, evaluator.ignore_paths, evaluator.split = None, {}, {}, "random"
    reference.get_mask = lambda root, paths, ignore: paths  # the mask itself stands for its paths
    for index, (scoremap, mask) in enumerate(zip(maps, masks, strict=True)):
        evaluator.mask_paths[index], evaluator.ignore_paths[index] = mask, None
        evaluator.accumulate(normalize_scoremap(resize_scoremap(scoremap, mask.shape)), index)
    return float(evaluator.compute())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wsolevaluation", required=True, help="folder of a clovaai/wsolevaluation checkout")
    parser.add_argument("--out", default=None, help="write the cases and both values as JSON here")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(args.wsolevaluation).resolve()))
    np.float = float  # the 2020 reference uses the alias NumPy 2 removed
    import evaluation as reference

    rows = []
    for images, side, mask_side, interval, seed in CASES:
        maps, masks = random_case(images, side, mask_side, seed)
        theirs, ours = reference_pxap(reference, maps, masks, interval), pxap(maps, masks, interval)
        case = {"images": images, "map_side": side, "mask_side": mask_side, "interval": interval, "seed": seed}
        rows.append({**case, "wsolevaluation": theirs, "simpool": ours, "difference": abs(theirs - ours)})
        print(f"{images} maps {side}x{side} -> masks {mask_side}: wsolevaluation {theirs:.10f}  simpool {ours:.10f}")
    if args.out:
        meta = {
            "command": "python " + " ".join(sys.argv),
            "date": time.strftime("%Y-%m-%d"),
            "machine": platform.node(),
        }
        write_json(args.out, {**meta, "reference": "clovaai/wsolevaluation evaluation.py MaskEvaluator", "cases": rows})
    if any(row["difference"] > 1e-9 for row in rows):
        raise SystemExit("PxAP differs from wsolevaluation's")


if __name__ == "__main__":
    main()
