"""``simpool eval discovery``: LOST or DINO-seg boxes on VOC07/VOC12/COCO20k, written with their CorLoc."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.folders import load_rgb
from ..utils import write_json
from .discovery import corloc_flags, dino_seg, lost
from .features import IMAGENET_MEAN, IMAGENET_STD
from .localization_cli import add_model_arguments, build_model

EXAMPLE = """examples:
  # LOST with SimPool's keys K = W_K LN(X) on VOC07 trainval (<root>/VOCdevkit/VOC2007/...)
  simpool eval discovery --method lost --dataset voc07 --root datasets/VOC2007 \\
      --model vit_small_patch16_224 --checkpoint simpool_dino.safetensors
  # the paper's DINO-seg baseline: head 4 of a CLS ViT, with the reference's component quirk
  simpool eval discovery --method dino_seg --source cls_head --head 4 --reference-quirk --dataset coco20k \\
      --root datasets/COCO/images --coco-list datasets/coco_20k_filenames.txt \\
      --coco-instances datasets/COCO/annotations/instances_train2014.json \\
      --model vit_small_patch16_224 --pool default --checkpoint dino.safetensors
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", choices=("lost", "dino_seg"), default="lost")
    parser.add_argument("--dataset", choices=("voc07", "voc12", "coco20k"), required=True)
    parser.add_argument("--root", required=True, help="VOC: folder holding VOCdevkit/; COCO: folder holding train2014/")
    parser.add_argument("--set", default="trainval", help="VOC image set")
    parser.add_argument("--no-hard", action="store_true", help="VOC: drop truncated/difficult objects")
    parser.add_argument("--coco-list", help="COCO20k: coco_20k_filenames.txt")
    parser.add_argument("--coco-instances", help="COCO20k: instances_train2014.json")
    parser.add_argument(
        "--source",
        default="auto",
        choices=("auto", "pool", "cls", "cls_head"),
        help="LOST keys: pool (SimPool's K) or cls (last block's keys); DINO-seg map: pool or cls_head",
    )
    parser.add_argument("--head", type=int, default=4, help="DINO-seg head with --source cls_head")
    parser.add_argument("--k-patches", type=int, default=100, help="LOST seed expansion")
    parser.add_argument("--threshold", type=float, default=0.6, help="DINO-seg attention mass kept")
    parser.add_argument("--reference-quirk", action="store_true", help="DINO-seg: LOST's component selection")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    add_model_arguments(parser)
    parser.add_argument("--output", default="discovery", help="folder for boxes.json and corloc.json")


def dataset_items(args: argparse.Namespace) -> list[tuple[str, Path, np.ndarray]]:
    """``(name, image path, (G, 4) boxes)`` per image; VOC images left without boxes by --no-hard are skipped."""
    if args.dataset == "coco20k":
        from ..data.coco import read_coco20k

        if not args.coco_list or not args.coco_instances:
            raise ValueError("--dataset coco20k needs --coco-list and --coco-instances")
        images = read_coco20k(args.coco_list, args.coco_instances)
        return [(i.name, Path(args.root) / i.file_name, i.boxes) for i in images]  # root/train2014/COCO_...jpg
    from ..data.voc import read_voc_annotation, voc_dir, voc_image_ids

    year = {"voc07": "2007", "voc12": "2012"}[args.dataset]
    folder = voc_dir(args.root, year)
    items = []
    for image_id in voc_image_ids(args.root, year, args.set):
        annotation = read_voc_annotation(folder / "Annotations" / f"{image_id}.xml", remove_hards=args.no_hard)
        if args.no_hard and len(annotation.boxes) == 0:
            continue  # as LOST: not counted
        items.append((annotation.name, folder / "JPEGImages" / f"{image_id}.jpg", annotation.boxes))
    return items


def patch_size_of(model: nn.Module) -> int:
    """Pixels per grid cell: a ViT's patch size, a CNN's total stride."""
    if hasattr(model, "patch_embed"):
        return int(model.patch_embed.patch_size[0])
    return int(model.feature_info[-1]["reduction"])


def cls_vit_keys(model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """Keys of the last attention layer, all heads concatenated, prefix tokens dropped ``(N, C)`` (LOST)."""
    if not getattr(model, "has_class_token", False):
        raise ValueError(f"{type(model).__name__} has no CLS token; use --source pool")
    captured = {}
    handle = model.blocks[-1].attn.qkv.register_forward_hook(lambda m, i, out: captured.setdefault("qkv", out))
    try:
        model.forward_features(image)
    finally:
        handle.remove()
    qkv = captured["qkv"]  # (1, T, 3C)
    B, T, C3 = qkv.shape
    heads = model.blocks[-1].attn.num_heads
    qkv = qkv.reshape(B, T, 3, heads, C3 // 3 // heads).permute(2, 0, 3, 1, 4)  # (3, B, heads, T, D)
    keys = qkv[1].transpose(1, 2).reshape(B, T, -1)  # (B, T, C)
    return keys[0, model.num_prefix_tokens :]  # (N, C)


def predict(model: nn.Module, image: torch.Tensor, image_hw: tuple[int, int], args: argparse.Namespace) -> np.ndarray:
    """One box for one padded image ``(1, 3, H', W')``."""
    from ..models import attention_maps, pool_input, pool_slot

    p = patch_size_of(model)
    source = args.source if args.source != "auto" else ("pool" if pool_slot(model) is not None else "cls")
    with torch.no_grad():
        if args.method == "lost":
            if source == "pool":
                x = pool_input(model, image)
                grid = x.shape[-2:] if x.ndim == 4 else model.patch_embed.dynamic_feat_size(tuple(image.shape[-2:]))
                keys = pool_slot(model).pool.keys(x)[0]  # K = W_K LN(X): (N, C)
            elif source == "cls":
                keys = cls_vit_keys(model, image)  # (N, C)
                grid = model.patch_embed.dynamic_feat_size(tuple(image.shape[-2:]))
            else:
                raise ValueError(f"LOST takes keys from --source pool or cls, not {source!r}")
            return lost(keys.float(), tuple(grid), p, image_hw, args.k_patches)
        if source == "cls":
            source = "cls_head"
        heads = model.blocks[-1].attn.num_heads if hasattr(model, "blocks") else 0
        if source == "cls_head" and not 0 <= args.head < heads:
            raise ValueError(f"--head {args.head} is not a head of {args.model} (it has {heads})")
        attention = attention_maps(model, image, source=source, head=args.head if source == "cls_head" else None)
    grid = tuple(attention.shape[-2:])  # (rows, cols)
    return dino_seg(attention[0].float(), grid, p, image_hw, args.threshold, args.reference_quirk)


def run(args: argparse.Namespace) -> int:
    from torchvision.transforms import functional as TF
    from tqdm import tqdm

    items = dataset_items(args)[: args.limit]
    if not items:
        raise ValueError("no images to evaluate")
    model = build_model(args, dynamic_img_size=True)
    device = next(model.parameters()).device
    p = patch_size_of(model)
    boxes, gts = {}, []
    for name, path, gt in tqdm(items, desc=f"{args.method} {args.dataset}"):
        image = TF.normalize(TF.to_tensor(load_rgb(path)), IMAGENET_MEAN, IMAGENET_STD)  # (3, H, W)
        H, W = image.shape[-2:]
        padded = torch.zeros(3, math.ceil(H / p) * p, math.ceil(W / p) * p)  # zeros after normalisation
        padded[:, :H, :W] = image
        boxes[name] = predict(model, padded[None].to(device), (H, W), args).tolist()
        gts.append(gt)
    flags = corloc_flags(list(boxes.values()), gts)
    score = float(100.0 * flags.sum() / len(flags))
    output = Path(args.output)
    write_json(output / "boxes.json", boxes)
    settings = {k: v for k, v in vars(args).items() if k != "run"}
    write_json(output / "corloc.json", {"CorLoc": score, "correct": int(flags.sum()), "images": len(flags), **settings})
    print(f"CorLoc {score:.2f} ({int(flags.sum())}/{len(flags)}) on {args.dataset}; wrote {output}/boxes.json")
    return 0
