"""What every check shares: timing on the device, peak memory, an ImageNet epoch on 8 GPUs, a synthetic ImageFolder."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGENET_TRAIN = 1_281_167  # ImageNet-1k training images
GPUS = 8
ROOT = Path(__file__).resolve().parents[2]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], steps: int, device: torch.device, warmup: int = 1) -> float:
    """Seconds per call of ``fn`` over ``steps`` calls, after ``warmup`` calls (compilation, cuDNN autotuning)."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - start) / steps


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    """The peak memory allocated on the GPU since :func:`reset_peak`, in MiB (None on a CPU)."""
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def epoch_minutes(images_per_s_per_gpu: float, gpus: int = GPUS) -> float:
    """Minutes of one ImageNet-1k epoch on ``gpus`` GPUs, each at ``images_per_s_per_gpu``."""
    return IMAGENET_TRAIN / (gpus * max(images_per_s_per_gpu, 1e-9)) / 60


def image_folder(root: Path, classes: int, per_class: int, size: tuple[int, int], seed: int = 0) -> Path:
    """``root/<class>/<i>.jpg``: random JPEG images of ``size`` (width, height), as ImageNet's (about 500 x 375)."""
    generator = np.random.default_rng(seed)
    for label in range(classes):
        folder = root / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            pixels = generator.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)  # (H, W, 3)
            Image.fromarray(pixels).save(folder / f"{index}.jpg", quality=90)
    return root
