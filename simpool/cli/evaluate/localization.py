"""``simpool eval localization``: MaxBoxAccV2 (and PxAP where the split has masks) of saved score maps or of a
model's attention maps, beside the image-independent baselines scored the same way
(:func:`simpool.evaluate.localization.wsol_localization`, :func:`~simpool.evaluate.localization.model_scoremaps`,
:func:`simpool.evaluate.split_baselines.split_baselines`)."""

from __future__ import annotations

import argparse

import numpy as np

from ...data.wsol import default_mask_root, load_masks, load_scoremaps, read_wsol_metadata, scoremap_path
from ...evaluate.attention_quality import strongest_baseline
from ...evaluate.features import format_table
from ...evaluate.localization import RESIZE_LENGTH, model_scoremaps, wsol_localization
from ...evaluate.split_baselines import object_prior, split_baselines
from ...models.factory import check_input_size, input_size_of
from ...models.loading import set_image_size
from ...utils import write_json
from ..common import add_data, add_img_size, check_option, check_writable
from . import add_model_options, model_of

EXAMPLE = """examples:
  # score maps saved as wsolevaluation names them: <scoremaps>/<image_id>.npy (224x224, in [0, 1])
  simpool eval localization --scoremaps runs/cams --metadata metadata/CUB/test --cam-curve-interval 0.001
  # maps computed from a model: SimPool's attention, a CLS ViT's mean CLS attention, or CAM for GAP CNNs
  simpool eval localization --model vit_small_patch16_224 --checkpoint model.safetensors \\
      --data dataset/CUB --metadata metadata/CUB/test --source pool
  # a bench export (boxes and masks): PxAP too, and the box prior from its training split
  simpool eval localization --scoremaps runs/cams --metadata bench/metadata/test --prior-metadata bench/metadata/train
Beside the maps' scores: uniform, centre, box_prior (the mean object of --prior-metadata, default the evaluated
split itself) and mean_map (the maps' own mean), each one map for every image, scored the same way."""

SCORES = ("MaxBoxAccV2", "BoxAcc@30", "BoxAcc@50", "BoxAcc@70", "PxAP")  # the printed columns, where computed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metadata", required=True, help="wsolevaluation split folder (image_ids.txt, ...)")
    parser.add_argument("--scoremaps", help="folder of <image_id>.npy score maps (evaluated as saved)")
    add_data(parser, required=False, help="image root, the paths of image_ids.txt relative to it (with --model)")
    parser.add_argument(
        "--source", default="auto", choices=("auto", "pool", "cls", "cam"), help="which map of the model"
    )
    parser.add_argument("--cam-curve-interval", type=float, default=0.01, help="0.001 for paper numbers")
    parser.add_argument("--iou-thresholds", type=int, nargs="+", default=[30, 50, 70], help="IoU percents, in [0, 100]")
    parser.add_argument("--single-contour", action="store_true", help="MaxBoxAcc v1: only the largest contour")
    parser.add_argument("--save-scoremaps", help="write the model's normalised maps here as <image_id>.npy")
    parser.add_argument(
        "--mask-root", help="folder the metadata's mask paths start from; unset: a bench export's masks/, or --data"
    )
    parser.add_argument(
        "--prior-metadata", help="split whose masks or boxes give box_prior; unset: the evaluated split"
    )
    parser.add_argument("--baseline-grid", type=int, default=14, help="side of the baselines' maps (ViT-S/16: 14)")
    add_img_size(
        parser,
        default=None,
        help="side the images are resized to for the model (the reference: 224); "
        "unset: the model's input size (img_size of --model-kwargs, its checkpoint's, else timm's)",
    )
    parser.add_argument("--no-baselines", action="store_true", help="score the maps alone")
    add_model_options(
        parser, batch_size=32, loader=False, model_required=False, out="localization.json", out_help="JSON result file"
    )


def split_masks(metadata, metadata_dir: str, mask_root: str | None, data: str | None) -> tuple[np.ndarray | None, str]:
    """The split's masks at 224x224 as wsolevaluation reads them (``None`` without masks), and their root."""
    if not metadata.masks:
        return None, ""
    root = mask_root or default_mask_root(metadata_dir, data)
    if root is None:
        raise ValueError(f"{metadata_dir} lists masks: give --mask-root, the folder their paths start from")
    return load_masks(metadata, root, metadata.image_ids, size=(RESIZE_LENGTH, RESIZE_LENGTH)), str(root)


def scored_maps(args: argparse.Namespace, metadata) -> np.ndarray:
    """The maps to score: saved ones as they are, or the model's (written to ``--save-scoremaps``)."""
    ids = metadata.image_ids
    if args.scoremaps:
        return load_scoremaps(args.scoremaps, ids)  # evaluated as saved, like evaluation.py
    if not args.model:
        raise ValueError("give --scoremaps DIR, or --model NAME --checkpoint PATH --data DIR")
    if not args.checkpoint or not args.data:
        raise ValueError("--model needs --checkpoint and --data, the image root")
    progress = not args.no_progress
    model = model_of(args)
    size = args.img_size or input_size_of(model)[-1]
    if args.img_size is not None:
        set_image_size(model, args.img_size)  # a ViT's position embedding resampled; a CNN takes any size
    check_input_size(model, size, "--img-size")
    maps = model_scoremaps(
        model, args.data, ids, metadata.class_labels, args.source, args.batch_size, progress, image_size=size
    )
    if args.save_scoremaps:
        for image_id, scoremap in zip(ids, maps, strict=True):
            path = scoremap_path(args.save_scoremaps, image_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, scoremap)
    return maps


def baselines_of(args: argparse.Namespace, metadata, masks, maps, name: str) -> tuple[dict, str]:
    """The baselines' scores and where box_prior came from."""
    prior_dir = args.prior_metadata or args.metadata
    prior_metadata = read_wsol_metadata(prior_dir) if args.prior_metadata else metadata
    prior_root = args.mask_root or default_mask_root(prior_dir, args.data)
    prior = object_prior(prior_metadata, prior_root)
    grid = (args.baseline_grid, args.baseline_grid)
    scores = split_baselines(
        metadata,
        prior,
        grid,
        masks,
        {name: maps},
        seed=args.seed,
        iou_thresholds=args.iou_thresholds,
        cam_curve_interval=args.cam_curve_interval,
        multi_contour=not args.single_contour,
    )
    return scores, str(prior_dir)


def check_arguments(args: argparse.Namespace) -> None:
    """The numbers that have a range, refused before any work."""
    check_option("--iou-thresholds", args.iou_thresholds, "[0, 100]", unique=True)
    check_option("--cam-curve-interval", args.cam_curve_interval, "(0, 1)")
    check_option("--baseline-grid", args.baseline_grid, "[1, inf)")


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    check_writable(args.out, kind="file")
    check_writable(args.save_scoremaps, "--save-scoremaps", kind="folder")  # both written after every map is computed
    metadata = read_wsol_metadata(args.metadata)
    masks, mask_root = split_masks(metadata, args.metadata, args.mask_root, args.data)
    maps = scored_maps(args, metadata)
    progress = not args.no_progress
    result = wsol_localization(
        metadata, maps, args.iou_thresholds, args.cam_curve_interval, not args.single_contour, progress, masks
    )
    name = "model" if args.model and not args.scoremaps else "scoremaps"
    baselines, prior_from = ({}, "") if args.no_baselines else baselines_of(args, metadata, masks, maps, name)
    settings = {
        "metadata": str(args.metadata),
        "num_images": len(metadata.image_ids),
        "cam_curve_interval": args.cam_curve_interval,
        "multi_contour": not args.single_contour,
        "source": None if args.scoremaps else args.source,
        "model": args.model,
        "checkpoint": args.checkpoint,
        "mask_root": mask_root or None,
        "box_prior_from": prior_from or None,
        "baseline_grid": None if args.no_baselines else args.baseline_grid,
    }
    write_json(args.out, {**result, "baselines": baselines, "settings": settings})
    print(scores_table({name: result, **baselines}))
    for metric in ("MaxBoxAccV2", "PxAP"):
        if baselines and metric in result:
            best, value = strongest_baseline(baselines, metric)
            print(f"{metric}: {name} {result[metric]:.2f}, the strongest image-independent baseline {best} {value:.2f}")
    print(f"wrote {args.out}")
    return 0


def scores_table(scores: dict[str, dict[str, float]]) -> str:
    """One row per set of maps (the scored maps, then the baselines), a column per metric any of them has."""
    columns = [metric for metric in SCORES if any(metric in row for row in scores.values())]
    rows = [(name, *(row.get(metric, "-") for metric in columns)) for name, row in scores.items()]
    return format_table(rows, ("maps", *columns))
