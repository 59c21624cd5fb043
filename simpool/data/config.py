"""The ``data`` section of a training recipe: which dataset (a layout of :mod:`.datasets`) and timm's
``create_transform`` options (:mod:`.transforms`). Supervised training uses it as it is; the probes extend it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import ClassVar

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from ..utils import usable_cpus


def default_workers(cap: int = 16) -> int:
    """Loader workers per training process: the CPUs this process may run on (``os.sched_getaffinity``) shared
    by the node's processes (torchrun's ``LOCAL_WORLD_SIZE``), less one for the training process, at most ``cap``.
    The CPUs counted are hardware threads: a DGX H100 node (2 x 56-core CPUs: 112 cores, 224 threads, 8 GPUs) gives
    ``min(16, 224 // 8 - 1) = 16`` per process (128 in all, on 112 cores); with 112 visible CPUs (SMT off), 13;
    a 2-core machine, 1. The recipes set no ``num_workers``: each node gets what it has."""
    cpus = usable_cpus()
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(cap, cpus // local - 1))


@dataclass
class DataConfig:
    """A dataset of the registry in ``simpool.data.datasets`` and timm's ``create_transform`` options."""

    dataset: str = "imagefolder"  # imagefolder | imagenet | cifar10 | cifar100 | flowers | bench
    root: str = ""
    train_split: str = "train"
    val_split: str = "val"
    fraction: float = 1.0  # the first `fraction` of each class's training images (ImageNet-20%: 0.2)
    bench_variant: str = "original"  # the rendered bench (dataset: bench without folders): variant,
    bench_images: int = 0  # images per split (0: all), rendered at img_size
    num_workers: int = field(default_factory=default_workers)  # per process; default: the CPUs per local process
    img_size: int = 224
    in_chans: int = 3
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    scale: tuple[float, ...] = (0.08, 1.0)
    hflip: float = 0.5
    color_jitter: float = 0.4
    auto_augment: str | None = None  # e.g. rand-m9-mstd0.5-inc1 (RandAugment)
    reprob: float = 0.0  # random erasing probability
    remode: str = "pixel"
    aug_splits: int = 0  # timm --aug-splits: 0 off; S >= 2 views per image, a clean one and S - 1 augmented
    resplit: bool = False  # timm --resplit: no random erasing on the clean view
    jsd: bool = False  # timm --jsd: CE on the clean view + Jensen-Shannon divergence between the views
    mean: tuple[float, ...] = IMAGENET_DEFAULT_MEAN
    std: tuple[float, ...] = IMAGENET_DEFAULT_STD

    BOUNDS: ClassVar[dict[str, str]] = {
        "fraction": "(0, 1]",
        "bench_images": "[0, inf)",
        "num_workers": "[0, inf)",
        "img_size": "[1, inf)",
        "in_chans": "[1, inf)",
        "crop_pct": "(0, inf)",
        "hflip": "[0, 1]",
        "color_jitter": "[0, inf)",
        "reprob": "[0, 1]",
        "aug_splits": "[0, inf)",
    }
