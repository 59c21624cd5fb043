"""Frozen features of any pool, and the loader every ``simpool eval`` protocol shares.

The representation of an image is what the classifier would see:
``model.forward_head(model.forward_features(x), pre_logits=True)``, for every pool (the CLS token
of a baseline ViT, GAP of a CNN, SimPool's pooled vector). This is the feature the paper evaluates
by k-NN, linear probe, retrieval and Recall@k (its Tables 3, 4, 7).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import nn
from torchvision import transforms
from tqdm import tqdm

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


def inference_precision(device: torch.device) -> torch.dtype | None:
    """The autocast dtype of feature extraction on ``device``: bf16 on CUDA (fp16 where the GPU lacks bf16),
    None (float32, no autocast) anywhere else."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextlib.contextmanager
def fast_inference(device: torch.device) -> Iterator[None]:
    """On CUDA: autocast (:func:`inference_precision`) and TF32 matmuls and convolutions, restored after; a
    no-op on a CPU, where features stay float32 and exact."""
    dtype = inference_precision(device)
    if dtype is None:
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        with torch.autocast(device.type, dtype=dtype):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


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
    runs k-NN on it in seconds); nothing is copied to the host per batch. On CUDA the model runs under bf16
    autocast with TF32 (:func:`fast_inference`); on a CPU in float32.

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
    with fast_inference(device):  # entered once: the TF32 flags set and restored once per extraction
        for images, targets in tqdm(batches, desc=desc, total=total, disable=not progress, unit="batch"):
            if len(images) == 0:  # every image of the batch unreadable (skipped by the dataset, named in warnings)
                continue
            features.append(pre_logits(model, images.to(device, non_blocking=True)).to(dtype))  # (B, D)
            labels.append(torch.as_tensor(targets).long().to(device, non_blocking=True))
    if not features:
        raise ValueError("extract_features: the loader yielded no batches (or no readable image)")
    sampler = getattr(batches, "sampler", None)  # a DataLoader: count what its dataset skipped
    if not getattr(batches, "drop_last", True) and hasattr(sampler, "__len__"):
        skipped = len(sampler) - sum(len(f) for f in features)
        if skipped > 0:
            warnings.warn(f"{desc}: skipped {skipped} unreadable image(s) of {len(sampler)}", stacklevel=3)
    return torch.cat(features), torch.cat(labels)


def chunks(n: int, chunk_size: int) -> Iterable[slice]:
    """Consecutive slices of ``range(n)`` of at most ``chunk_size`` items."""
    for start in range(0, n, max(1, chunk_size)):
        yield slice(start, min(n, start + chunk_size))


def rows_per_chunk(columns: int, budget_bytes: int = 2**29, element_bytes: int = 4) -> int:
    """How many rows of a ``(rows, columns)`` similarity matrix fit in ``budget_bytes`` (at least 1)."""
    return max(1, budget_bytes // max(1, columns * element_bytes))


def data_loader(
    dataset,
    batch_size: int = 64,
    workers: int = 0,
    device: torch.device | str | None = None,
    shuffle: bool = False,
    drop_last: bool = False,
) -> torch.utils.data.DataLoader:
    """A ``DataLoader`` over ``dataset`` with ``batch_size`` and ``workers`` (pinned memory when ``device`` is CUDA)."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=workers,
        pin_memory=device is not None and torch.device(device).type == "cuda",
        persistent_workers=False,
        collate_fn=getattr(dataset, "collate_fn", None),  # image_folder's drops unreadable images
    )


def format_table(rows: Sequence[Sequence], header: Sequence[str]) -> str:
    """A plain-text table; floats with 2 decimals, unless that would hide them (0.001: ``1e-03`` form, ``:g``)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def _cell(value) -> str:
    """A float with 2 decimals when they show it (a percentage), else in ``:g`` form (a learning rate 0.001)."""
    if not isinstance(value, float) or not math.isfinite(value):
        return str(value)
    return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:g}"
