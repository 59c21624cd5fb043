"""``simpool attention``: attention maps, masks, boxes, figure grids and an HTML gallery for any images."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..evaluate.features import parse_kwargs
from ..utils import default_device
from .boxes import read_boxes
from .figures import gamma_label
from .report import Checkpoint, attention_report

EXAMPLE = (
    "example: simpool attention --model vit_small_patch16_224 --checkpoint cls=vits_cls.safetensors "
    "--checkpoint simpool=vits_simpool.safetensors --image-size 896 photos/ --out outputs/attention "
    "(more in docs/visualization.md)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files or folders of images")
    parser.add_argument("--model", required=True, help="timm model name, e.g. vit_small_patch16_224, resnet50")
    parser.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        metavar="[LABEL=]PATH",
        help="weights to draw, one grid column each (repeat the option); LABEL defaults to the file name",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--image-size", type=int, default=None, help="input side in pixels (the paper: 896); default: the model's"
    )
    parser.add_argument("--pool", default="auto", help="pool of the checkpoints; auto: simpool or default, by names")
    parser.add_argument(
        "--gammas",
        default=None,
        help="a gamma sweep (Figures C5/C6): one gamma per checkpoint, comma-separated ('none': no gamma); "
        "they label the columns and set each SimPool's gamma",
    )
    parser.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a timm argument the checkpoint needs, e.g. patch_size=8 (repeat the option; values parsed as YAML)",
    )
    parser.add_argument(
        "--boxes", default=None, help="ground truth: JSON {image: [[x0,y0,x1,y1],...]} or localization.txt"
    )
    parser.add_argument("--mass", type=float, default=0.6, help="share of attention mass kept by masks (DINO)")
    parser.add_argument("--box-threshold", type=float, default=0.5, help="threshold of the normalised map for boxes")
    parser.add_argument("--display", type=int, default=224, help="side in pixels of each picture in figures")
    parser.add_argument("--grid-rows", type=int, default=8, help="images per grid page")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--mean", type=float, nargs="+", default=None, help="input normalisation; default: timm's")
    parser.add_argument("--std", type=float, nargs="+", default=None)
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")


def parse_checkpoints(specs: list[str], pool: str, gammas: list[str] | None) -> list[Checkpoint]:
    """``[LABEL=]PATH`` specs as :class:`Checkpoint` s; with ``gammas``, one gamma each, labelled by it."""
    if gammas is not None and len(gammas) != len(specs):
        raise ValueError(f"--gammas has {len(gammas)} values for {len(specs)} checkpoints")
    checkpoints = []
    for i, spec in enumerate(specs):
        label, _, path = spec.rpartition("=") if "=" in spec and not Path(spec).exists() else ("", "", spec)
        checkpoint = Checkpoint(label or Path(path).stem, Path(path), pool)
        if gammas is not None:
            gamma = None if gammas[i].lower() == "none" else float(gammas[i])
            checkpoint.pool_kwargs = {"gamma": gamma}
            checkpoint.label = label or gamma_label(gamma)
        checkpoints.append(checkpoint)
    labels = [c.label for c in checkpoints]
    if len(set(labels)) != len(labels):
        raise ValueError(f"checkpoint labels must differ, got {labels}; name them LABEL=PATH")
    return checkpoints


def run(args: argparse.Namespace) -> int:
    summary = attention_report(
        args.model,
        parse_checkpoints(args.checkpoint, args.pool, args.gammas.split(",") if args.gammas else None),
        args.inputs,
        args.out,
        image_size=args.image_size,
        boxes=read_boxes(args.boxes) if args.boxes else None,
        mass=args.mass,
        box_threshold=args.box_threshold,
        display=args.display,
        batch_size=args.batch_size,
        mean=tuple(args.mean) if args.mean else None,
        std=tuple(args.std) if args.std else None,
        grid_rows=args.grid_rows,
        timm_kwargs=parse_kwargs(args.model_arg),
        device=args.device or default_device(),
    )
    out = Path(args.out)
    print(f"{len(summary['images'])} images; gallery: {out / 'gallery.html'}; scores: {out / 'scores.json'}")
    for record in summary["images"]:
        parts = [
            f"{label}: " + ", ".join(_fmt(k, v) for k, v in s.items() if k in ("confidence", "iou", "mask_area"))
            for label, s in record["models"].items()
        ]
        print(f"  {record['name']}  " + " | ".join(parts))
    return 0


def _fmt(key: str, value: float) -> str:
    return f"{key} {value:.3f}"
