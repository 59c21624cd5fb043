"""The ``data`` section of a training recipe: which dataset (a layout of :mod:`.datasets`) and timm's
``create_transform`` options (:mod:`.transforms`). Supervised training uses it as it is; the probes extend it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD


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
    num_workers: int = 4
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
