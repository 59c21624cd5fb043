"""``simpool eval discovery``: LOST or DINO-seg boxes on VOC07/VOC12/COCO20k, written with their CorLoc
(:func:`simpool.evaluate.discovery.discover`). DINO-seg on a CLS ViT is also scored for every head of the last
block: the best head's CorLoc (as the paper reports DINO-seg) beside the mean over heads' map."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...evaluate.discovery import discover, discovery_items
from ...models.families import family_of_name
from ...utils import write_json
from ..common import add_data, check_option, check_writable
from . import add_model_options, model_of

EXAMPLE = """examples:
  # LOST with SimPool's keys K = W_K LN(X) on VOC07 trainval (<data>/VOCdevkit/VOC2007/...)
  simpool eval discovery --method lost --dataset voc07 --data datasets/VOC2007 \\
      --model vit_small_patch16_224 --checkpoint simpool_dino.safetensors
  # the paper's DINO-seg baseline: head 4 of a CLS ViT, with the reference's component quirk; every head's
  # CorLoc, the best head's and the mean over heads' map's are reported too
  simpool eval discovery --method dino_seg --source cls_head --head 4 --reference-quirk --dataset coco20k \\
      --data datasets/COCO/images --coco-list datasets/coco_20k_filenames.txt \\
      --coco-instances datasets/COCO/annotations/instances_train2014.json \\
      --model vit_small_patch16_224 --pool default --checkpoint dino.safetensors
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", choices=("lost", "dino_seg"), default="lost")
    parser.add_argument("--dataset", choices=("voc07", "voc12", "coco20k"), required=True)
    add_data(parser, help="VOC: folder holding VOCdevkit/; COCO: folder holding train2014/")
    parser.add_argument("--image-set", default="trainval", help="VOC image set")
    parser.add_argument("--no-hard", action="store_true", help="VOC: drop truncated/difficult objects")
    parser.add_argument("--coco-list", help="COCO20k: coco_20k_filenames.txt")
    parser.add_argument("--coco-instances", help="COCO20k: instances_train2014.json")
    parser.add_argument(
        "--source",
        default="auto",
        choices=("auto", "pool", "cls", "cls_head"),
        help="LOST keys: pool (SimPool's K) or cls (last block's keys); DINO-seg map: pool or cls_head",
    )
    parser.add_argument("--head", type=int, default=4, help="DINO-seg head whose boxes are written (CLS ViTs)")
    parser.add_argument("--k-patches", type=int, default=100, help="LOST seed expansion")
    parser.add_argument("--threshold", type=float, default=0.6, help="DINO-seg attention mass kept")
    parser.add_argument("--reference-quirk", action="store_true", help="DINO-seg: LOST's component selection")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    # one image at a time, at its own size: no batch size, no loader
    add_model_options(
        parser, batch_size=None, loader=False, out="discovery", out_help="folder for boxes.json and corloc.json"
    )


def run(args: argparse.Namespace) -> int:
    check_option("--threshold", args.threshold, "(0, 1]")
    check_option("--k-patches", args.k_patches, "[1, inf)")
    check_option("--head", args.head, "[0, inf)")
    check_option("--limit", args.limit, "[1, inf)")
    check_writable(args.out, kind="folder")
    if not args.checkpoint:
        raise ValueError("a model needs both --model and --checkpoint")
    items = discovery_items(
        args.dataset,
        args.data,
        image_set=args.image_set,
        remove_hards=args.no_hard,
        coco_list=args.coco_list,
        coco_instances=args.coco_instances,
    )[: args.limit]
    if not items:
        raise ValueError("no images to evaluate")
    if family_of_name(args.model).name == "vit" and not any(
        item.startswith("dynamic_img_size=") for item in args.model_kwargs
    ):  # images at their own size; CNNs take any size anyway
        args.model_kwargs = [*args.model_kwargs, "dynamic_img_size=true"]
    model = model_of(args, out_kind="folder")
    boxes, score = discover(
        model,
        items,
        method=args.method,
        source=args.source,
        head=args.head,
        k_patches=args.k_patches,
        threshold=args.threshold,
        reference_quirk=args.reference_quirk,
        progress=not args.no_progress,
    )
    out = Path(args.out)
    write_json(out / "boxes.json", boxes)
    settings = {k: v for k, v in vars(args).items() if k != "run"}
    write_json(out / "corloc.json", {**score, **settings})
    print(
        f"CorLoc {score['CorLoc']:.2f} ({score['correct']}/{score['images']}) on {args.dataset}; wrote {out}/boxes.json"
    )
    if "per_head_CorLoc" in score:
        print(heads_line(score, args.head))
    return 0


def heads_line(score: dict, head: int) -> str:
    """DINO-seg's CorLoc per head, the best head's (chosen on these images, as the paper) and the mean map's."""
    per_head = ", ".join(f"{index}: {value:.2f}" for index, value in enumerate(score["per_head_CorLoc"]))
    return (
        f"DINO-seg CorLoc per head ({per_head}); the boxes are head {head}'s; best head {score['best_head']}: "
        f"{score['best_head_CorLoc']:.2f}; the mean over heads' map: {score['mean_heads_CorLoc']:.2f}"
    )
