"""MaxBoxAccV2 against wsolevaluation itself: the same correct counts, and the time of each.

Needs a checkout of clovaai/wsolevaluation (not part of this repository) and its ``munch`` dependency:

    git clone https://github.com/clovaai/wsolevaluation /tmp/wsolevaluation && pip install munch
    python benchmarks/reference_localization.py --wsolevaluation /tmp/wsolevaluation --cam-curve-interval 0.001 \
        --out FILE.json

The reference's ``BoxEvaluator.accumulate`` gets the CAM-like maps of ``localization_speed.py`` one by
one (its metadata loading is bypassed: the ground-truth boxes are set directly at 224x224); ours gets
them through ``box_accuracy_counts``. Exits non-zero when the counts differ.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from localization_speed import cam_like_maps
from record import git_commit, record_head, write_record

from simpool.evaluate.localization import box_accuracy_counts, cam_thresholds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wsolevaluation", required=True, help="folder of a clovaai/wsolevaluation checkout")
    parser.add_argument("--num-maps", type=int, default=1000)
    parser.add_argument("--cam-curve-interval", type=float, default=0.001)
    parser.add_argument("--out", default=None, help="write the timings and the check as JSON here")
    args = parser.parse_args()
    head = record_head()
    cv2.setNumThreads(1)
    sys.path.insert(0, str(Path(args.wsolevaluation).resolve()))
    np.float = float  # the 2020 reference uses the alias NumPy 2 removed
    import evaluation as reference

    maps, boxes = cam_like_maps(args.num_maps)
    evaluator = reference.BoxEvaluator.__new__(reference.BoxEvaluator)  # no metadata files: set what it reads
    evaluator.cam_threshold_list = list(np.arange(0, 1, args.cam_curve_interval))
    evaluator.iou_threshold_list = [30, 50, 70]
    evaluator.multi_contour_eval = True
    evaluator.num_correct = {t: np.zeros(len(evaluator.cam_threshold_list)) for t in evaluator.iou_threshold_list}
    evaluator.cnt = 0
    evaluator.gt_bboxes = dict(enumerate(boxes))
    start = time.perf_counter()
    for i, scoremap in enumerate(maps):
        evaluator.accumulate(scoremap, i)
    reference_s = time.perf_counter() - start
    start = time.perf_counter()
    ours = box_accuracy_counts(maps, boxes, cam_thresholds(args.cam_curve_interval))  # (3, T)
    ours_s = time.perf_counter() - start
    same = all(np.array_equal(evaluator.num_correct[t], ours[k]) for k, t in enumerate(evaluator.iou_threshold_list))
    n = args.num_maps
    print(f"{n} maps, interval {args.cam_curve_interval}")
    print(f"wsolevaluation BoxEvaluator.accumulate: {1e3 * reference_s / n:.2f} ms/map")
    print(f"simpool box_accuracy_counts:            {1e3 * ours_s / n:.2f} ms/map")
    print(f"ratio {reference_s / ours_s:.1f}x; identical correct counts: {same}")
    if args.out:
        results = {"num_maps": n, "interval": args.cam_curve_interval, "reference": "clovaai/wsolevaluation"}
        results["reference_commit"] = git_commit(args.wsolevaluation)
        results |= {"reference_ms_per_map": 1e3 * reference_s / n, "simpool_ms_per_map": 1e3 * ours_s / n}
        write_record(args.out, head, {**results, "identical_counts": same})
    if not same:
        raise SystemExit("the counts differ")


if __name__ == "__main__":
    main()
