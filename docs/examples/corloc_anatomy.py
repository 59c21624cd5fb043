"""Why a demo model's CorLoc and MaxBoxAccV2 disagree.

See docs/RESULTS.md, "Does SimPool localize better than the CLS token?".

Usage: python docs/examples/corloc_anatomy.py RUN [--kind cls|simpool ...]
RUN is a `simpool demo --out` folder holding `report.json` and the saved weights (`cls.safetensors`,
`simpool.safetensors`). For each model it recomputes the attention maps of the run's final evaluation (the
first `eval_images` images of `original` in its split), checks that their CorLoc equals the report's, and
prints where the DINO-seg box goes wrong:

- the patches DINO-seg keeps (the most attended patches holding 60% of the mass), how many 4-connected
  components they form, and the share of them in the biggest component, whose box is the prediction;
- of the images whose box misses (IoU < 0.5), how many boxes lie inside the object's box (too small) and how
  many are not smaller than it;
- CorLoc with the box around every kept patch instead of the biggest component, and CorLoc when DINO-seg
  keeps other shares of the mass (0.6 is DINO's and the demo's).
"""

import argparse
import json
from pathlib import Path

import numpy as np
import scipy.ndimage
import torch

from simpool.data.bench import SimPoolBench
from simpool.evaluate.discovery import box_iou_lost, corloc, dino_seg, keep_mass
from simpool.experiments.demo import MODELS, DemoConfig, attention_scores, bench_vit, predict
from simpool.models import load_checkpoint

MASS_SHARES = (0.3, 0.45, 0.6, 0.75, 0.9)


def mask_box(mask: np.ndarray, patch_size: int) -> np.ndarray:
    """``[x0, y0, x1, y1]`` pixels of the patches of a ``(rows, cols)`` bool mask."""
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.int64) * patch_size


def inside(box: np.ndarray, outer: np.ndarray, margin: int) -> bool:
    """Whether ``box`` lies within ``outer`` grown by ``margin`` pixels on each side (a box of whole patches
    around an object reaches up to one patch beyond its pixel box)."""
    return bool(np.all(box[:2] >= outer[:2] - margin) and np.all(box[2:] <= outer[2:] + margin))


def anatomy(maps: np.ndarray, boxes: np.ndarray, patch_size: int, image_size: int) -> dict:
    """Per-image anatomy of DINO-seg on maps ``(N, h, w)`` against one ground-truth box per image ``(N, 4)``."""
    N, h, w = maps.shape
    gts = [[b.tolist()] for b in boxes]
    kept, components, share, iou, missed, too_small = [], [], [], [], [], []
    union_boxes = []
    for m, gt in zip(maps, boxes, strict=True):
        mask = keep_mass(torch.from_numpy(m), 0.6).reshape(h, w).numpy()  # (h, w) bool
        labels, count = scipy.ndimage.label(mask)  # 4-connectivity, as dino_seg
        sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]  # (count,)
        box = dino_seg(torch.from_numpy(m), (h, w), patch_size, (image_size, image_size))
        overlap = float(box_iou_lost(box, [gt.tolist()])[0])
        kept.append(int(mask.sum()))
        components.append(count)
        share.append(sizes.max() / mask.sum())
        iou.append(overlap)
        missed.append(overlap < 0.5)
        too_small.append(overlap < 0.5 and inside(box, gt, patch_size))
        union_boxes.append(mask_box(mask, patch_size))
    missed, too_small = np.array(missed), np.array(too_small)
    gt_patches = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / patch_size**2  # (N,)
    by_share = {
        share_kept: corloc(
            [dino_seg(torch.from_numpy(m), (h, w), patch_size, (image_size,) * 2, share_kept) for m in maps], gts
        )
        for share_kept in MASS_SHARES
    }
    return {
        "images": N,
        "CorLoc": 100.0 * (1 - missed.mean()),
        "kept patches (mean)": float(np.mean(kept)),
        "object box, in patches (mean)": float(gt_patches.mean()),
        "components (mean)": float(np.mean(components)),
        "share of kept patches in the biggest component (mean)": float(np.mean(share)),
        "IoU of the box (mean)": float(np.mean(iou)),
        "misses whose box lies inside the object's": int(too_small.sum()),
        "misses whose box does not": int((missed & ~too_small).sum()),
        "CorLoc, box around every kept patch": corloc(union_boxes, gts),
        **{f"CorLoc, {s:.0%} of the mass kept": v for s, v in by_share.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a simpool demo --out folder with report.json and the weights")
    parser.add_argument("--kind", choices=sorted(MODELS), action="append", help="the models (default: both)")
    args = parser.parse_args(argv)
    report = json.loads((args.run / "report.json").read_text())
    config = DemoConfig(**report["config"])
    data = SimPoolBench(config.eval_split, "original", config.bench(), num_images=config.eval_images)
    rows = {}
    for kind in args.kind or list(MODELS):
        model = bench_vit(kind, config)
        load_checkpoint(model, args.run / f"{kind}.safetensors")
        out = predict(model, data, torch.device("cpu"), MODELS[kind][1])
        scores = attention_scores(out, config.patch_size)
        for key in ("CorLoc", "MaxBoxAccV2"):  # the same maps as the run's final evaluation
            if not np.isclose(scores[key], report["results"][kind][key]):
                raise SystemExit(
                    f"{kind}: {key} {scores[key]:.2f} here, {report['results'][kind][key]:.2f} in the report"
                )
        rows[kind] = {
            "MaxBoxAccV2": scores["MaxBoxAccV2"],
            **anatomy(out["maps"], out["boxes"], config.patch_size, config.image_size),
        }
    kinds = list(rows)
    print("| " + " | ".join(["", *kinds]) + " |")
    print("|" + "---|" * (len(kinds) + 1))
    for key in rows[kinds[0]]:
        values = [rows[k][key] for k in kinds]
        print(f"| {key} | " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in values) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
