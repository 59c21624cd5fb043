"""Frozen features of any pool, and the model/data options every ``simpool eval`` protocol shares.

The representation of an image is what the classifier would see:
``model.forward_head(model.forward_features(x), pre_logits=True)``, for every pool (the CLS token
of a baseline ViT, GAP of a CNN, SimPool's pooled vector). This is the feature the paper evaluates
by k-NN, linear probe, retrieval and Recall@k (its Tables 3, 4, 7).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Sequence

import torch
import yaml
from torch import nn
from torchvision import transforms
from tqdm import tqdm

from ..models import create_model, load_checkpoint
from ..utils import default_device

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def eval_transform(
    resize: int = 256, crop: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation: str = "bicubic"
) -> transforms.Compose:
    """DINO's evaluation transform: ``Resize(256, bicubic)``, ``CenterCrop(224)``, normalise (ImageNet).

    Proxy-Anchor's (Recall@k) is the same with ``interpolation="bilinear"``.
    """
    return transforms.Compose(
        [
            transforms.Resize(resize, interpolation=transforms.InterpolationMode(interpolation)),
            transforms.CenterCrop(crop),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )


def pre_logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The pooled representation of ``images`` ``(B, 3, H, W)``: ``(B, D)`` (pools with k vectors: flattened)."""
    features = model.forward_head(model.forward_features(images), pre_logits=True)
    return features.flatten(1)  # (B, D) or (B, k, D) -> (B, k * D)


@torch.no_grad()
def extract_features(
    model: nn.Module,
    batches: Iterable,
    device: torch.device | str | None = None,
    progress: bool = True,
    desc: str = "features",
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of every batch ``(images, labels)`` of a loader, in loader order.

    The features stay on the evaluation device (a GPU keeps ImageNet's 1.28M x 384 in 1 GB of float16 and
    runs k-NN on it in seconds); nothing is copied to the host per batch.

    Args:
        model: a timm model (any pool); put in eval mode here.
        batches: an iterable of ``(images (B, 3, H, W), labels (B,))``, e.g. a ``DataLoader`` without shuffling.
        device: where the model runs; by default the device of its parameters.
        progress: show a progress bar.
        dtype: of the kept features (``torch.float16`` halves their memory).

    Returns:
        ``(features (N, D) on the device, labels (N,) int64 on the device)``.
    """
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    features, labels = [], []
    total = len(batches) if hasattr(batches, "__len__") else None
    for images, targets in tqdm(batches, desc=desc, total=total, disable=not progress, unit="batch"):
        features.append(pre_logits(model, images.to(device, non_blocking=True)).to(dtype))  # (B, D)
        labels.append(torch.as_tensor(targets).long().to(device, non_blocking=True))
    if not features:
        raise ValueError("extract_features: the loader yielded no batches")
    return torch.cat(features), torch.cat(labels)


def chunks(n: int, chunk_size: int) -> Iterable[slice]:
    """Consecutive slices of ``range(n)`` of at most ``chunk_size`` items."""
    for start in range(0, n, max(1, chunk_size)):
        yield slice(start, min(n, start + chunk_size))


def rows_per_chunk(columns: int, budget_bytes: int = 2**29, element_bytes: int = 4) -> int:
    """How many rows of a ``(rows, columns)`` similarity matrix fit in ``budget_bytes`` (at least 1)."""
    return max(1, budget_bytes // max(1, columns * element_bytes))


# ----------------------------------------------------------------------------------------------------------------------
# Command-line options shared by the protocols
# ----------------------------------------------------------------------------------------------------------------------


def parse_kwargs(items: Sequence[str] | None) -> dict:
    """``["img_size=32", "depth=2"]`` -> ``{"img_size": 32, "depth": 2}``; values are read as YAML scalars."""
    kwargs = {}
    for item in items or ():
        if "=" not in item:
            raise ValueError(f"expected key=value, got {item!r}")
        key, value = item.split("=", 1)
        kwargs[key.strip()] = yaml.safe_load(value)
    return kwargs


def add_model_arguments(parser: argparse.ArgumentParser, num_classes: int = 0) -> None:
    """The options that build the evaluated model and run it: model, pool, weights, device, batch size."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", required=True, help="timm model name, e.g. vit_small_patch16_224, resnet50")
    group.add_argument("--pool", default="simpool", help="'default' (timm's own: CLS / GAP) or a simpool pool name")
    group.add_argument("--pool-kwargs", nargs="*", default=[], metavar="KEY=VALUE", help="pool arguments (gamma=2)")
    group.add_argument(
        "--model-kwargs", nargs="*", default=[], metavar="KEY=VALUE", help="timm arguments (img_size=512 ...)"
    )
    group.add_argument("--checkpoint", default=None, help="weights (safetensors or a torch file of tensors)")
    group.add_argument("--checkpoint-key", default=None, help="entry of the checkpoint dict (teacher, model ...)")
    group.add_argument("--num-classes", type=int, default=num_classes, help="classifier outputs (0: none)")
    group.add_argument("--batch-size", type=int, default=64)
    group.add_argument("--workers", type=int, default=2, help="data-loading processes")
    group.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when available)")
    group.add_argument("--output", default=None, help="JSON file for the result (default: print only)")
    group.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_model(args: argparse.Namespace) -> nn.Module:
    """The model the options describe, with its weights, in eval mode on the chosen device.

    Weights load non-strictly so that a classifier checkpoint serves a feature extractor
    (``--num-classes 0``); every backbone tensor must be present, else a ``ValueError`` names them.
    """
    model = create_model(
        args.model,
        pool=args.pool,
        pool_kwargs=parse_kwargs(args.pool_kwargs),
        num_classes=args.num_classes,
        **parse_kwargs(args.model_kwargs),
    )
    if args.checkpoint:
        report = load_checkpoint(model, args.checkpoint, key=args.checkpoint_key, strict=False)
        missing = [name for name in report["missing"] if not _is_classifier(model, name)]
        if missing:
            raise ValueError(f"checkpoint {args.checkpoint} lacks model weights: {missing}")
    return model.eval().to(device_of(args))


def _is_classifier(model: nn.Module, name: str) -> bool:
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
    own = {id(p) for p in classifier.parameters()} if isinstance(classifier, nn.Module) else set()
    return id(dict(model.named_parameters()).get(name)) in own


def device_of(args: argparse.Namespace) -> torch.device:
    """The device named by ``--device``, else CUDA when available: chosen once per command."""
    return torch.device(args.device) if getattr(args, "device", None) else default_device()


def loader(dataset, args: argparse.Namespace, shuffle: bool = False, drop_last: bool = False):
    """A ``DataLoader`` with the command's batch size and workers (pinned memory on CUDA)."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=args.workers,
        pin_memory=device_of(args).type == "cuda",
        persistent_workers=False,
    )


def format_table(rows: Sequence[Sequence], header: Sequence[str]) -> str:
    """A plain-text table; floats with 2 decimals."""
    cells = [[f"{v:.2f}" if isinstance(v, float) and math.isfinite(v) else str(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)
