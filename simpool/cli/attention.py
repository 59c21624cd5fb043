"""``simpool attention``: attention maps, masks, boxes, figure grids and an HTML gallery for any images."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..utils import parse_kv
from ..visualize.boxes import read_boxes
from ..visualize.report import ReportConfig, attention_report, parse_checkpoints
from .common import add_img_size, add_model, add_out, add_runtime, check_option, check_writable, device_of

EXAMPLE = """example:
  simpool attention --model vit_small_patch16_224 --checkpoint cls=vits_cls.safetensors \\
      --checkpoint simpool=vits_simpool.safetensors --img-size 896 photos/ --out outputs/attention
More in docs/visualization.md.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files or folders of images")
    add_model(parser, checkpoint=False)
    parser.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        metavar="[LABEL=]PATH",
        help="weights to draw, one grid column each (repeat the option); LABEL: the file name when left out",
    )
    add_out(parser, required=True, help="output folder")
    add_img_size(parser, default=None, help="input side in pixels (the paper: 896); unset: the model's")
    parser.add_argument(
        "--gammas",
        default=None,
        help="a gamma sweep (Figures C5/C6): one gamma per checkpoint, comma-separated ('none': no gamma); "
        "they label the columns and set each SimPool's gamma",
    )
    parser.add_argument(
        "--boxes", default=None, help="ground truth: JSON {image: [[x0,y0,x1,y1],...]} or localization.txt"
    )
    parser.add_argument("--mass", type=float, default=0.6, help="share of attention mass kept by masks (DINO)")
    parser.add_argument("--box-threshold", type=float, default=0.5, help="threshold of the normalised map for boxes")
    parser.add_argument("--display", type=int, default=224, help="side in pixels of each picture in figures")
    parser.add_argument("--grid-rows", type=int, default=8, help="images per grid page")
    parser.add_argument("--mean", type=float, nargs="+", default=None, help="input normalisation; unset: timm's")
    parser.add_argument("--std", type=float, nargs="+", default=None)
    add_runtime(parser, batch_size=4, seed=False, loader=False)


def run(args: argparse.Namespace) -> int:
    check_option("--mass", args.mass, "(0, 1]")
    check_option("--box-threshold", args.box_threshold, "[0, 1]")
    check_option("--display", args.display, "[1, inf)")
    check_option("--grid-rows", args.grid_rows, "[1, inf)")
    check_option("--std", args.std, "(0, inf)")
    check_writable(args.out, kind="folder")
    gammas = args.gammas.split(",") if args.gammas else None
    config = ReportConfig(
        image_size=args.img_size,
        boxes=read_boxes(args.boxes) if args.boxes else None,
        mass=args.mass,
        box_threshold=args.box_threshold,
        display=args.display,
        batch_size=args.batch_size,
        mean=tuple(args.mean) if args.mean else None,
        std=tuple(args.std) if args.std else None,
        grid_rows=args.grid_rows,
        model_kwargs=parse_kv(args.model_kwargs),
        num_classes=args.num_classes,
        device=device_of(args),
        progress=not args.no_progress,
    )
    checkpoints = parse_checkpoints(args.checkpoint, args.pool, gammas, parse_kv(args.pool_kwargs))
    summary = attention_report(args.model, checkpoints, args.inputs, args.out, config)
    out = Path(args.out)
    print(f"{len(summary['images'])} images; gallery: {out / 'gallery.html'}; scores: {out / 'scores.json'}")
    for record in summary["images"]:
        parts = [
            f"{label}: " + ", ".join(f"{k} {v:.3f}" for k, v in s.items() if k in ("confidence", "iou", "mask_area"))
            for label, s in record["models"].items()
        ]
        print(f"  {record['name']}  " + " | ".join(parts))
    return 0
