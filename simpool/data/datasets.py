"""Training data: a registry of dataset layouts, unreadable images skipped, reproducible sampling.

Datasets are ImageFolder layouts (``root/<split>/<class>/<image>``): ImageNet, CIFAR-10/100 and Oxford
Flowers exported to folders, and the SimPool bench exported with ``simpool bench export --layout
imagefolder``; the bench can also be rendered on the fly (``dataset: bench`` without folders).
``fraction`` keeps the first fraction of each class's training images in file-name order (the paper's
ImageNet-20%: the first 20% per class).

Reproducibility: the random augmentation of an image is a function of ``(seed, epoch, index)`` only
(each sample runs its transform under its own seed), and :class:`StepSampler` hands every process a
fixed slice of each global batch. So a run gives the same batches whatever the number of processes or
loader workers, and a run resumed in the middle of an epoch sees exactly the batches it would have seen.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler
from torchvision.datasets import ImageFolder

from .folders import load_rgb

UNREADABLE = (OSError, ValueError, SyntaxError)  # what PIL raises on truncated or corrupted files


class SafeImageFolder(ImageFolder):
    """An ImageFolder whose unreadable images are skipped with a warning naming them.

    ``dataset[(epoch, index)]`` runs the transform under a seed drawn from ``(seed, epoch, index)``;
    ``dataset[index]`` uses epoch 0. An unreadable image gives ``None``, which :func:`collate_skip`
    drops and counts.
    """

    def __init__(self, root: str | Path, transform: Callable | None = None, fraction: float = 1.0, seed: int = 0):
        super().__init__(str(root), transform=transform, loader=load_rgb)  # 16-bit and float images: real range
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        if fraction < 1.0:
            self.samples = first_fraction_per_class(self.samples, fraction)
            self.imgs = self.samples
            self.targets = [target for _, target in self.samples]
        self.seed = seed

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        path, target = self.samples[index]
        try:
            image = self.loader(path)
        except UNREADABLE as error:
            warnings.warn(f"skipping {error}", stacklevel=2)
            return None
        if self.transform is not None:
            with seeded(hash((self.seed, epoch, index)) % 2**31):
                image = self.transform(image)
        return image, target


def first_fraction_per_class(samples: list[tuple[str, int]], fraction: float) -> list[tuple[str, int]]:
    """The first ``max(1, floor(fraction * n_c))`` samples of each class ``c``, in file-name order."""
    by_class: dict[int, list[tuple[str, int]]] = {}
    for sample in sorted(samples):
        by_class.setdefault(sample[1], []).append(sample)
    kept = []
    for target in sorted(by_class):
        items = by_class[target]
        kept.extend(items[: max(1, math.floor(fraction * len(items) + 1e-9))])
    return kept


class seeded:
    """Context: the CPU torch, NumPy and Python RNGs seeded with ``seed`` inside, all three restored on exit.

    CUDA generators are neither reseeded nor saved (``torch.random.fork_rng(devices=[])``): a transform
    runs on the CPU, and touching them would reset the training stream of every GPU of the process.
    """

    def __init__(self, seed: int):
        self.seed = seed

    def __enter__(self):
        self._fork = torch.random.fork_rng(devices=[])
        self._fork.__enter__()
        self._states = (np.random.get_state(), random.getstate())
        torch.default_generator.manual_seed(self.seed)  # not torch.manual_seed, which reseeds CUDA too
        np.random.seed(self.seed)
        random.seed(self.seed)

    def __exit__(self, *exc):
        np.random.set_state(self._states[0])
        random.setstate(self._states[1])
        return self._fork.__exit__(*exc)


MAX_SKIPPED = 0.5  # the share of its images a training epoch or an evaluation may skip as unreadable


def check_skipped(skipped: int, total: int, what: str = "images") -> None:
    """Refuse a pass over ``total`` images of which more than :data:`MAX_SKIPPED` (half) were unreadable: its
    loss, accuracy or probe table would describe the few images left (or none), not the data named.

    Raises:
        ValueError: ``"12 of 16 training images were unreadable (more than half): ..."``.
    """
    if total > 0 and skipped > MAX_SKIPPED * total:
        raise ValueError(
            f"{skipped} of {total} {what} were unreadable (more than {MAX_SKIPPED:.0%} may not be): "
            "the warnings above name each file; repair or remove them"
        )


def collate_skip(batch: list) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Stack the readable samples; returns ``(images (B, C, H, W), targets (B,), number skipped)``."""
    kept = [sample for sample in batch if sample is not None]
    skipped = len(batch) - len(kept)
    if not kept:
        return torch.empty(0), torch.empty(0, dtype=torch.long), skipped
    images = torch.stack([image for image, _ in kept])  # (B, C, H, W)
    targets = torch.tensor([target for _, target in kept], dtype=torch.long)  # (B,)
    return images, targets, skipped


class StepSampler(Sampler):
    """Yields ``(epoch, index)`` keys: this process's slice of every global batch of one epoch.

    The epoch's order is a permutation seeded by ``(seed, epoch)``; global batch ``s`` is
    ``perm[s * G : (s + 1) * G]`` and process ``r`` of ``W`` takes its ``r``-th ``G / W`` slice, so the
    union over processes is the same batch for any ``W``. The incomplete last batch is dropped.
    ``set_epoch(epoch, start_update)`` restarts in the middle of an epoch.
    """

    def __init__(self, num_samples: int, global_batch: int, rank: int = 0, world_size: int = 1, seed: int = 0):
        if global_batch % world_size:
            raise ValueError(f"batch_size {global_batch} is not divisible by the {world_size} processes")
        self.num_samples = num_samples
        self.global_batch = global_batch
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.epoch = 0
        self.start_update = 0
        self.updates_per_epoch = num_samples // global_batch
        if self.updates_per_epoch == 0:
            raise ValueError(f"batch_size {global_batch} is larger than the {num_samples} training images")

    def set_epoch(self, epoch: int, start_update: int = 0) -> None:
        self.epoch = epoch
        self.start_update = start_update

    def __len__(self) -> int:
        return (self.updates_per_epoch - self.start_update) * (self.global_batch // self.world_size)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.num_samples, generator=generator).tolist()
        local = self.global_batch // self.world_size
        for update in range(self.start_update, self.updates_per_epoch):
            start = update * self.global_batch + self.rank * local
            for index in order[start : start + local]:
                yield (self.epoch, index)


class ShardSampler(Sampler):
    """Every ``world_size``-th index from ``rank``, in order, without padding: exact sums over processes."""

    def __init__(self, num_samples: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, num_samples, world_size))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self):
        return iter(self.indices)


DatasetBuilder = Callable[..., Dataset]
DATASETS: dict[str, DatasetBuilder] = {}


def register_dataset(*names: str):
    """Register a builder ``(root, split, transform, fraction, seed) -> Dataset`` under ``names``."""

    def decorator(builder: DatasetBuilder) -> DatasetBuilder:
        for name in names:
            DATASETS[name] = builder
        return builder

    return decorator


@register_dataset("imagefolder", "imagenet", "cifar10", "cifar100", "flowers")
def folder_dataset(root: str, split: str, transform: Callable | None, fraction: float = 1.0, seed: int = 0, **unused):
    """``root/<split>/<class>/<image>``; CIFAR and Flowers are read from this layout too."""
    path = Path(root) / split
    if not path.is_dir():
        raise ValueError(f"no {split!r} folder at {path}: expected an ImageFolder layout root/{split}/<class>/<image>")
    return SafeImageFolder(path, transform=transform, fraction=fraction, seed=seed)


class BenchImages(Dataset):
    """The SimPool bench rendered on the fly (``simpool.data.bench.SimPoolBench``) as ``(image, label)``.

    Images are rendered at ``image_size`` and pass through the same PIL transforms as folder images,
    with the same ``(seed, epoch, index)`` seeding. ``num_images`` caps the split (0: all of it): a cap above
    the split's size takes the whole split (a recipe's one cap serves the 60,000-image train split and the
    5,000-image val split alike).
    """

    def __init__(
        self,
        split: str,
        transform: Callable | None,
        variant: str = "original",
        num_images: int = 0,
        image_size: int = 64,
        seed: int = 0,
    ):
        from .bench import BenchConfig, SimPoolBench

        config = BenchConfig(image_size=image_size)
        self.bench = SimPoolBench(split, variant, config)
        if 0 < num_images < len(self.bench):
            self.bench = SimPoolBench(split, variant, config, num_images=num_images)
        self.classes = list(self.bench.classes)
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.bench)

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        image = Image.fromarray(self.bench.render(index)[0])  # uint8 (S, S, 3)
        if self.transform is not None:
            with seeded(hash((self.seed, epoch, index)) % 2**31):
                image = self.transform(image)
        return image, int(self.bench.labels[index])


@register_dataset("bench")
def bench_dataset(root: str, split: str, transform: Callable | None, fraction: float = 1.0, seed: int = 0, **bench):
    """The SimPool bench: exported folders at ``root/<split>`` when present, else rendered on the fly.

    ``bench`` holds ``variant``, ``num_images`` and ``image_size`` for on-the-fly rendering; export
    folders with ``simpool bench export --format imagefolder``.
    """
    if root and (Path(root) / split).is_dir():
        return folder_dataset(root, split, transform, fraction, seed)
    if fraction < 1.0:
        raise ValueError("data.fraction applies to folder datasets; use data.bench_images for the rendered bench")
    return BenchImages(split, transform, seed=seed, **bench)


def create_dataset(
    name: str, root: str, split: str, transform: Callable | None, fraction: float = 1.0, seed: int = 0, **kwargs
):
    """A dataset of the registry; an unknown name raises ``ValueError`` listing the valid ones.

    ``kwargs`` go to builders that take them (the bench's ``variant``, ``num_images``, ``image_size``).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {sorted(DATASETS)}")
    return DATASETS[name](root, split, transform, fraction=fraction, seed=seed, **kwargs)
