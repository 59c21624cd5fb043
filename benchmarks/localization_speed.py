"""MaxBoxAccV2 speed: ``iou_curve`` (every threshold at once) against a per-image, per-threshold loop, same numbers.

The loop (``iou_curve_loop``) is wsolevaluation's algorithm as written: one ``cv2.threshold`` +
``cv2.findContours`` + ``boundingRect`` per CAM threshold. ``iou_curve`` takes the boxes of every
threshold from the compiled component sweeps (``simpool/evaluate/_level_sets.c``); ``--fallback`` times
the path used where the kernel was not built instead (one ``findContours`` per distinct 8-bit level).

Maps: CAM-like, a 14x14 grid (one Gaussian object plus noise) upsampled bicubically to 224 and min-max
normalised, as the reference prepares a ViT-S/16 map; one ground-truth box per map.

    python benchmarks/localization_speed.py --num-maps 1000 --cam-curve-interval 0.001 --out FILE.json
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch
from record import record_head, write_record

from simpool.evaluate import localization
from simpool.evaluate.localization import cam_thresholds, iou_curve, iou_curve_loop, normalize_scoremap


def cam_like_maps(num_maps: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:14, 0:14]
    maps, boxes = [], []
    for _ in range(num_maps):
        cy, cx, sy, sx = rng.uniform(3, 11), rng.uniform(3, 11), rng.uniform(1, 4), rng.uniform(1, 4)
        grid = np.exp(-((yy - cy) ** 2) / (2 * sy**2) - (xx - cx) ** 2 / (2 * sx**2)) + 0.3 * rng.random((14, 14))
        maps.append(normalize_scoremap(cv2.resize(grid, (224, 224), interpolation=cv2.INTER_CUBIC)))
        x0, y0 = int(16 * max(cx - 2 * sx, 0)), int(16 * max(cy - 2 * sy, 0))
        x1, y1 = int(min(16 * (cx + 2 * sx), 223)), int(min(16 * (cy + 2 * sy), 223))
        boxes.append(np.array([[x0, y0, max(x1, x0), max(y1, y0)]]))
    return maps, boxes


def timed(function, maps, boxes, thresholds) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    curves = np.stack([function(m, b, thresholds) for m, b in zip(maps, boxes, strict=True)])  # (N, T)
    return time.perf_counter() - start, curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-maps", type=int, default=1000)
    parser.add_argument("--cam-curve-interval", type=float, default=0.001, help="0.001: the paper's setting")
    parser.add_argument("--threads", type=int, default=1, help="OpenCV and torch threads")
    parser.add_argument("--fallback", action="store_true", help="time the path without the C kernel")
    parser.add_argument("--out", default=None, help="write the timings as JSON here, with the machine and load")
    args = parser.parse_args()
    head = record_head()
    if args.fallback:
        localization._level_sets = None
    path = "OpenCV, distinct levels" if localization._level_sets is None else "C kernel"
    cv2.setNumThreads(args.threads)
    torch.set_num_threads(args.threads)
    maps, boxes = cam_like_maps(args.num_maps)
    thresholds = cam_thresholds(args.cam_curve_interval)
    fast_s, fast = timed(iou_curve, maps, boxes, thresholds)
    loop_s, loop = timed(iou_curve_loop, maps, boxes, thresholds)
    identical = bool(np.array_equal(fast, loop))
    print(f"{args.num_maps} maps, {len(thresholds)} thresholds (interval {args.cam_curve_interval})")
    print(f"per-threshold loop: {loop_s:8.2f} s  ({1e3 * loop_s / args.num_maps:.2f} ms/map)")
    print(f"all thresholds at once ({path}): {fast_s:8.2f} s  ({1e3 * fast_s / args.num_maps:.2f} ms/map)")
    print(f"speed-up: {loop_s / fast_s:.1f}x; identical IoU curves: {identical}")
    if args.out:
        results = {"num_maps": args.num_maps, "interval": args.cam_curve_interval, "thresholds": len(thresholds)}
        results |= {"path": path, "loop_ms_per_map": 1e3 * loop_s / args.num_maps}
        results |= {"fast_ms_per_map": 1e3 * fast_s / args.num_maps, "identical": identical}
        write_record(args.out, head, results)
    if not identical:
        raise SystemExit("the two paths disagree")


if __name__ == "__main__":
    main()
