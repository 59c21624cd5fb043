"""``simpool eval localization``: MaxBoxAccV2 of saved score maps or of a model's attention maps
(:func:`simpool.evaluate.localization.wsol_localization`, :func:`~simpool.evaluate.localization.model_scoremaps`)."""

from __future__ import annotations

import argparse

import numpy as np

from ...data.wsol import load_scoremaps, read_wsol_metadata, scoremap_path
from ...evaluate.localization import model_scoremaps, wsol_localization
from ...utils import write_json
from ..common import add_data, check_writable
from . import add_model_options, model_of

EXAMPLE = """examples:
  # score maps saved as wsolevaluation names them: <scoremaps>/<image_id>.npy (224x224, in [0, 1])
  simpool eval localization --scoremaps runs/cams --metadata metadata/CUB/test --cam-curve-interval 0.001
  # maps computed from a model: SimPool's attention, a CLS ViT's mean CLS attention, or CAM for GAP CNNs
  simpool eval localization --model vit_small_patch16_224 --checkpoint model.safetensors \\
      --data dataset/CUB --metadata metadata/CUB/test --source pool
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metadata", required=True, help="wsolevaluation split folder (image_ids.txt, ...)")
    parser.add_argument("--scoremaps", help="folder of <image_id>.npy score maps (evaluated as saved)")
    add_data(parser, required=False, help="image root, the paths of image_ids.txt relative to it (with --model)")
    parser.add_argument(
        "--source", default="auto", choices=("auto", "pool", "cls", "cam"), help="which map of the model"
    )
    parser.add_argument("--cam-curve-interval", type=float, default=0.01, help="0.001 for paper numbers")
    parser.add_argument("--iou-thresholds", type=int, nargs="+", default=[30, 50, 70])
    parser.add_argument("--single-contour", action="store_true", help="MaxBoxAcc v1: only the largest contour")
    parser.add_argument("--save-scoremaps", help="write the model's normalised maps here as <image_id>.npy")
    add_model_options(
        parser, batch_size=32, loader=False, model_required=False, out="localization.json", out_help="JSON result file"
    )


def run(args: argparse.Namespace) -> int:
    check_writable(args.out)
    check_writable(args.save_scoremaps, "--save-scoremaps")  # both written after every map is computed
    metadata = read_wsol_metadata(args.metadata)
    ids = metadata.image_ids
    if args.scoremaps:
        maps = load_scoremaps(args.scoremaps, ids)  # evaluated as saved, like evaluation.py
    elif args.model:
        if not args.checkpoint or not args.data:
            raise ValueError("--model needs --checkpoint and --data, the image root")
        progress = not args.no_progress
        maps = model_scoremaps(
            model_of(args), args.data, ids, metadata.class_labels, args.source, args.batch_size, progress
        )
        if args.save_scoremaps:
            for image_id, scoremap in zip(ids, maps, strict=True):
                path = scoremap_path(args.save_scoremaps, image_id)
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, scoremap)
    else:
        raise ValueError("give --scoremaps DIR, or --model NAME --checkpoint PATH --data DIR")
    result = wsol_localization(
        metadata, maps, args.iou_thresholds, args.cam_curve_interval, not args.single_contour, not args.no_progress
    )
    settings = {
        "metadata": str(args.metadata),
        "num_images": len(ids),
        "cam_curve_interval": args.cam_curve_interval,
        "multi_contour": not args.single_contour,
        "source": None if args.scoremaps else args.source,
        "model": args.model,
        "checkpoint": args.checkpoint,
    }
    write_json(args.out, {**result, "settings": settings})
    print(f"{'metric':<14} {'value':>8}")
    for name, value in result.items():
        print(f"{name:<14} {value:>8.2f}" if not name.startswith("threshold") else f"{name:<14} {value:>8.3f}")
    print(f"wrote {args.out}")
    return 0
