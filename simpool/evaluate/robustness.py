"""Background robustness on ImageNet-9 (Xiao et al., ICLR 2021; paper Table C3): accuracy per variation, BG-gap.

A 1000-class model predicts the top-1 of all its logits, then the prediction is mapped to IN-9;
the 630 ImageNet classes outside IN-9 map to -1 and always count as wrong. A model trained on the 9
classes (the SimPool bench) is read directly. BG-gap = accuracy(mixed_same) - accuracy(mixed_rand):
how much a correlated background helps.
"""

from __future__ import annotations

import argparse

import torch
from torchvision import transforms
from tqdm import tqdm

from ..data.in9 import in9_classes, in9_dataset, in9_variations, load_in9_mapping
from ..utils import write_json
from .features import IMAGENET_MEAN, IMAGENET_STD, add_model_arguments, build_model, format_table, loader

IN9_MEAN, IN9_STD = (0.4717, 0.4499, 0.3837), (0.2600, 0.2516, 0.2575)  # the reference's --in9 statistics


def in9_predictions(logits: torch.Tensor, mapping: torch.Tensor | None = None) -> torch.Tensor:
    """IN-9 labels predicted from ``logits`` ``(B, C)``: argmax over all C, then ``mapping[argmax]`` when given.

    Raises:
        ValueError: ``mapping`` has fewer entries than ``C``.
    """
    top1 = logits.argmax(dim=1)  # (B,): over all classes first, never restricted to IN-9's
    if mapping is None:
        return top1
    if len(mapping) < logits.shape[1]:
        raise ValueError(f"mapping has {len(mapping)} entries for {logits.shape[1]} logits")
    return mapping.to(top1.device)[top1]  # (B,), -1 outside IN-9


def in9_accuracy(logits: torch.Tensor, labels: torch.Tensor, mapping: torch.Tensor | None = None) -> float:
    """Percent of images whose (mapped) top-1 equals the IN-9 label; -1 predictions are wrong."""
    return 100.0 * (in9_predictions(logits, mapping) == labels.to(logits.device)).float().mean().item()


def bg_gap(accuracies: dict[str, float]) -> float:
    """BG-gap = accuracy(mixed_same) - accuracy(mixed_rand), in points.

    Raises:
        ValueError: either variation is missing.
    """
    missing = [v for v in ("mixed_same", "mixed_rand") if v not in accuracies]
    if missing:
        raise ValueError(f"BG-gap needs accuracies of mixed_same and mixed_rand; missing {missing}")
    return accuracies["mixed_same"] - accuracies["mixed_rand"]


@torch.no_grad()
def variation_logits(model, batches, mean, std, progress: bool = True, desc: str = "") -> tuple[torch.Tensor, ...]:
    """Logits of images in [0, 1]: clamped, normalised with ``mean``/``std``, then the model (the reference's
    ``NormalizedModel``). Returns ``(logits (N, C), labels (N,))`` on CPU."""
    device = next(model.parameters()).device
    mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(std, device=device).view(1, 3, 1, 1)
    logits, labels = [], []
    for images, targets in tqdm(batches, desc=desc, disable=not progress, unit="batch"):
        images = (images.to(device).clamp(0, 1) - mean) / std  # (B, 3, H, W)
        logits.append(model(images).float().cpu())  # (B, C)
        labels.append(targets)
    return torch.cat(logits), torch.cat(labels)


# ----------------------------------------------------------------------------------------------------------------------
# simpool eval robustness
# ----------------------------------------------------------------------------------------------------------------------

EXAMPLE = """examples:
  simpool eval robustness --data-path /data/bg_challenge --mapping /data/bg_challenge/in_to_in9.json \\
      --model resnet50 --pool simpool --checkpoint in1k.safetensors --output in9.json
  simpool eval robustness --data-path bench_in9 --model resnet18 --num-classes 10 --checkpoint bench.safetensors
The data path holds <variation>/val/<class>/ folders. Without --mapping the model's outputs are the classes
themselves (9 for IN-9, 10 for the SimPool bench's export)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-path", required=True, help="folder of <variation>/val/<class>/ image folders")
    parser.add_argument("--variations", nargs="+", default=None, help="default: every variation present")
    parser.add_argument("--mapping", default=None, help="in_to_in9.json for 1000-class models")
    parser.add_argument("--resize", type=int, default=None, help="resize images (IN-9 is already 224x224)")
    parser.add_argument("--in9-stats", action="store_true", help="normalise with IN-9 statistics (9-class models)")
    add_model_arguments(parser, num_classes=None)


def run(args: argparse.Namespace) -> int:
    mapping = load_in9_mapping(args.mapping) if args.mapping else None
    if args.num_classes is None:
        args.num_classes = len(mapping) if mapping is not None else 9
    model = build_model(args)
    steps = ([transforms.Resize((args.resize, args.resize))] if args.resize else []) + [transforms.ToTensor()]
    mean, std = (IN9_MEAN, IN9_STD) if args.in9_stats else (IMAGENET_MEAN, IMAGENET_STD)
    accuracies = {}
    variations = args.variations or in9_variations(args.data_path)
    classes = in9_classes(args.data_path, variations)  # one numbering, even where a variation lacks a class
    for variation in variations:
        dataset = in9_dataset(args.data_path, variation, transforms.Compose(steps), classes)
        logits, labels = variation_logits(model, loader(dataset, args), mean, std, not args.no_progress, variation)
        if mapping is None and max(dataset.class_to_idx.values()) >= logits.shape[1]:
            raise ValueError(
                f"{logits.shape[1]} logits for labels up to {max(dataset.class_to_idx.values())}: "
                "pass --mapping for a 1000-class model"
            )
        accuracies[variation] = in9_accuracy(logits, labels, mapping)
    rows = list(accuracies.items())
    result = {"accuracy": accuracies}
    if {"mixed_same", "mixed_rand"} <= set(accuracies):
        result["bg_gap"] = bg_gap(accuracies)
        rows.append(("BG-gap", result["bg_gap"]))
    print(format_table(rows, ("variation", "accuracy %")))
    if args.output:
        write_json(args.output, {"protocol": "robustness", "model": args.model, "pool": args.pool, **result})
    return 0
