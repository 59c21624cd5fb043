"""``simpool eval localization``: MaxBoxAccV2 of saved score maps or of a model's attention maps."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ..data.folders import load_rgb
from ..data.wsol import load_scoremaps, read_wsol_metadata, scoremap_path
from ..utils import default_device, write_json
from .features import IMAGENET_MEAN, IMAGENET_STD
from .localization import max_box_acc_v2, prepare_scoremaps

EXAMPLE = """examples:
  # score maps saved as wsolevaluation names them: <scoremaps>/<image_id>.npy (224x224, in [0, 1])
  simpool eval localization --scoremaps runs/cams --metadata metadata/CUB/test --cam-curve-interval 0.001
  # maps computed from a model: SimPool's attention, a CLS ViT's mean CLS attention, or CAM for GAP CNNs
  simpool eval localization --model vit_small_patch16_224 --checkpoint model.safetensors \\
      --data dataset/CUB --metadata metadata/CUB/test --source pool --num-classes 200
"""


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Model options shared with ``simpool eval discovery``."""
    parser.add_argument("--model", help="timm model name (with --checkpoint)")
    parser.add_argument("--checkpoint", help="weights (safetensors or a torch checkpoint, loaded without code)")
    parser.add_argument("--pool", default="simpool", help="the model's pool: simpool, default (timm's own), ...")
    parser.add_argument("--pool-kwargs", nargs="*", default=[], metavar="KEY=VALUE", help="pool arguments (gamma=2)")
    parser.add_argument(
        "--model-kwargs", nargs="*", default=[], metavar="KEY=VALUE", help="timm arguments (img_size=64 depth=4 ...)"
    )
    parser.add_argument("--num-classes", type=int, default=1000, help="classifier outputs of the checkpoint")
    parser.add_argument("--checkpoint-key", default=None, help="key of the state dict inside the checkpoint")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")


def build_model(args: argparse.Namespace, dynamic_img_size: bool = False) -> torch.nn.Module:
    """The model of ``--model/--pool/--checkpoint``, in eval mode on the chosen device."""
    from ..models import create_model, load_checkpoint
    from ..models.families import family_of_name
    from .features import parse_kwargs

    if not args.model or not args.checkpoint:
        raise ValueError("a model needs both --model and --checkpoint")
    kwargs = parse_kwargs(args.model_kwargs)
    if dynamic_img_size and family_of_name(args.model).name == "vit":  # CNNs take any size anyway
        kwargs.setdefault("dynamic_img_size", True)
    pool_kwargs = parse_kwargs(args.pool_kwargs)
    model = create_model(args.model, pool=args.pool, pool_kwargs=pool_kwargs, num_classes=args.num_classes, **kwargs)
    load_checkpoint(model, args.checkpoint, key=args.checkpoint_key)
    return model.eval().to(torch.device(args.device) if args.device else default_device())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metadata", required=True, help="wsolevaluation split folder (image_ids.txt, ...)")
    parser.add_argument("--scoremaps", help="folder of <image_id>.npy score maps (evaluated as saved)")
    parser.add_argument("--data", help="image root, the paths of image_ids.txt relative to it (with --model)")
    parser.add_argument(
        "--source", default="auto", choices=("auto", "pool", "cls", "cam"), help="which map of the model"
    )
    add_model_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cam-curve-interval", type=float, default=0.01, help="0.001 for paper numbers")
    parser.add_argument("--iou-thresholds", type=int, nargs="+", default=[30, 50, 70])
    parser.add_argument("--single-contour", action="store_true", help="MaxBoxAcc v1: only the largest contour")
    parser.add_argument("--save-scoremaps", help="write the model's normalised maps here as <image_id>.npy")
    parser.add_argument("--output", default="localization.json", help="JSON result file")


def model_scoremaps(args: argparse.Namespace, image_ids: list[str], labels: dict[str, int]) -> np.ndarray:
    """``(N, 224, 224)`` normalised maps of the model, images resized to 224x224 without crop (the reference)."""
    from torchvision import transforms
    from tqdm import tqdm

    from ..models import attention_maps
    from .cam import class_activation_maps

    model = build_model(args)
    device = next(model.parameters()).device
    transform = transforms.Compose(
        [transforms.Resize((224, 224)), transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    maps = []
    for start in tqdm(range(0, len(image_ids), args.batch_size), desc="score maps"):
        batch_ids = image_ids[start : start + args.batch_size]
        images = torch.stack([transform(load_rgb(Path(args.data) / i)) for i in batch_ids])
        images = images.to(device)  # (B, 3, 224, 224)
        if args.source == "cam":
            targets = torch.tensor([labels[i] for i in batch_ids])
            batch = class_activation_maps(model, images, targets)  # (B, h, w)
        else:
            batch = attention_maps(model, images, source=args.source)  # (B, h, w)
        maps.append(prepare_scoremaps(batch.float().cpu()))  # bicubic to 224, min-max: (B, 224, 224)
    return np.concatenate(maps)


def run(args: argparse.Namespace) -> int:
    metadata = read_wsol_metadata(args.metadata)
    ids = metadata.image_ids
    missing = [i for i in ids if i not in metadata.boxes]
    if missing:
        raise ValueError(f"{len(missing)} images have no box in localization.txt, e.g. {missing[0]!r}")
    if args.scoremaps:
        maps, normalize = load_scoremaps(args.scoremaps, ids), False  # evaluated as saved, like evaluation.py
    elif args.model:
        if not args.data:
            raise ValueError("--model needs --data, the image root")
        maps, normalize = model_scoremaps(args, ids, metadata.class_labels), False
        if args.save_scoremaps:
            for image_id, scoremap in zip(ids, maps, strict=True):
                path = scoremap_path(args.save_scoremaps, image_id)
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, scoremap)
    else:
        raise ValueError("give --scoremaps DIR, or --model NAME --checkpoint PATH --data DIR")
    result = max_box_acc_v2(
        maps,
        [metadata.boxes[i] for i in ids],
        [metadata.image_sizes[i] for i in ids],
        iou_thresholds=tuple(args.iou_thresholds),
        cam_curve_interval=args.cam_curve_interval,
        multi_contour=not args.single_contour,
        normalize=normalize,
        progress=True,
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
    write_json(args.output, {**result, "settings": settings})
    print(f"{'metric':<14} {'value':>8}")
    for name, value in result.items():
        print(f"{name:<14} {value:>8.2f}" if not name.startswith("threshold") else f"{name:<14} {value:>8.3f}")
    print(f"wrote {args.output}")
    return 0
