"""What the probe's heads train and are selected on: the three splits, keyed rows, and the token cache.

The training split is divided, seeded, into the part the heads train on and a held-out part
(``probe.holdout``); the test split (``data.val_split``) is only read at the end. With ``probe.cache`` the
backbone's tokens of the unaugmented training split are written once to a float16 memmap
(:mod:`simpool.data.token_cache`) and every epoch reads them from there.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ...data.datasets import SafeImageFolder, ShardSampler
from ...data.folders import image_folder
from ...data.token_cache import TokenCache, create_partial, fill_partial, finish_cache, open_cache
from ...data.transforms import build_transforms
from ..distributed import DistInfo, all_reduce_sum, barrier, broadcast_object
from .config import ProbeConfig


def renumber(dataset: SafeImageFolder, classes: list[str]) -> None:
    """Label ``dataset``'s images by their class's index in ``classes`` (a superset of its own)."""
    index = {name: i for i, name in enumerate(classes)}
    dataset.samples = [(path, index[dataset.classes[label]]) for path, label in dataset.samples]
    dataset.imgs, dataset.targets = dataset.samples, [label for _, label in dataset.samples]
    dataset.classes, dataset.class_to_idx = list(classes), index


def split_holdout(num_images: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(training rows, held-out rows)`` of ``range(num_images)``, each sorted; at least one of each."""
    order = torch.randperm(num_images, generator=torch.Generator().manual_seed(seed)).numpy()
    held = min(max(1, round(fraction * num_images)), num_images - 1)
    if held < 1:
        raise ValueError(f"{num_images} training image(s): too few to hold some out")
    return np.sort(order[held:]), np.sort(order[:held])


@dataclass
class ProbeSplits:
    """The probe's images: the training split augmented (``train``) and plain (``plain``: the held-out part and
    the cache read it), the test split, every class of both, and the rows of the two parts of the training split.
    """

    train: SafeImageFolder
    plain: SafeImageFolder
    test: Dataset
    classes: list[str]
    fit_rows: np.ndarray
    held_rows: np.ndarray

    @classmethod
    def load(cls, config: ProbeConfig) -> ProbeSplits:
        data, seed = config.data, config.train.seed
        train_tf, eval_tf = build_transforms(data)
        root = Path(data.root)
        train = SafeImageFolder(root / data.train_split, train_tf, seed=seed)
        plain = SafeImageFolder(root / data.train_split, eval_tf, seed=seed)
        classes = sorted({*train.classes, *(p.name for p in (root / data.val_split).iterdir() if p.is_dir())})
        for dataset in (train, plain):  # a class of the test split missing from training keeps its label
            renumber(dataset, classes)
        test = image_folder(root / data.val_split, eval_tf, classes)
        fit_rows, held_rows = split_holdout(len(train), config.probe.holdout, seed)
        return cls(train, plain, test, classes, fit_rows, held_rows)


class Rows(Dataset):
    """The rows ``indices`` of a keyed dataset (``dataset[(epoch, index)]``); ``with_index`` also returns each
    sample's row in the full dataset."""

    def __init__(self, dataset: Dataset, indices: np.ndarray, with_index: bool = False):
        self.dataset, self.indices, self.with_index = dataset, np.asarray(indices), with_index

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key):
        epoch, i = key if isinstance(key, tuple) else (0, key)
        row = int(self.indices[i])
        sample = self.dataset[(epoch, row)]
        if sample is None or not self.with_index:
            return sample
        return row, *sample


def collate_rows(batch: list) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """``(rows, images (B, 3, H, W), labels (B,))`` of the readable samples of ``Rows(..., with_index=True)``."""
    kept = [sample for sample in batch if sample is not None]
    rows = np.array([row for row, _, _ in kept], dtype=np.int64)
    images = torch.stack([image for _, image, _ in kept]) if kept else torch.empty(0)  # (B, 3, H, W)
    return rows, images, torch.tensor([label for _, _, label in kept], dtype=torch.long)


def eval_loader(dataset: Dataset, micro: int, info: DistInfo, collate, num_workers: int = 0) -> DataLoader:
    """This process's shard of ``dataset`` in order (every image counted once over the processes)."""
    sampler = ShardSampler(len(dataset), info.rank, info.world_size)
    pin = info.device.type == "cuda"
    return DataLoader(dataset, micro, sampler=sampler, collate_fn=collate, num_workers=num_workers, pin_memory=pin)


def cached_batches(cache: TokenCache, rows: np.ndarray, sampler, micro: int):
    """``(tokens (b, T, C) float16, labels, 0)`` micro-batches of ``sampler``'s keys ``(epoch, i)`` -> ``rows[i]``."""
    keys = [i for _, i in sampler]
    for start in range(0, len(keys), micro):
        tokens, labels = cache[rows[keys[start : start + micro]]]
        yield tokens, labels, 0


def cache_key(config: ProbeConfig, dataset) -> dict:
    """What the cached tokens depend on: a cache made from anything else is rewritten. The checkpoint counts by
    its content (SHA-256), not its path, and the images by their paths and labels (``dataset.samples`` of an
    ImageFolder), so a checkpoint or a folder replaced in place is not served stale tokens."""
    data = config.data
    checkpoint = config.model.checkpoint
    samples = getattr(dataset, "samples", None)
    listing = "\n".join(f"{path}\t{label}" for path, label in samples) if samples is not None else None
    return {
        "model": dataclasses.asdict(config.model),
        "checkpoint_sha256": _sha256_file(checkpoint) if checkpoint else None,
        "images_sha256": hashlib.sha256(listing.encode()).hexdigest() if listing is not None else None,
        "blocks": config.probe.blocks,
        "blocks_mode": config.probe.blocks_mode,
        "root": str(Path(data.root).resolve() / data.train_split),
        "num_images": len(dataset),
        "img_size": data.img_size,
        "crop_pct": data.crop_pct,
        "interpolation": data.interpolation,
        "mean": list(data.mean),
        "std": list(data.std),
    }


def _sha256_file(path: str) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _fill_shard(config: ProbeConfig, path: Path, shape: tuple, grid, dataset: Dataset, info: DistInfo) -> int:
    """Write this process's rows of the cache (the backbone of ``grid`` over ``dataset``'s images); returns how
    many images gave tokens over all processes."""
    rows = Rows(dataset, np.arange(len(dataset))[info.rank :: info.world_size], with_index=True)
    loader = DataLoader(
        rows,
        batch_size=config.train.batch_size // info.world_size,
        collate_fn=collate_rows,
        num_workers=config.data.num_workers,
        pin_memory=info.device.type == "cuda",
    )
    bar = tqdm(loader, desc="cache tokens", disable=not (config.train.progress and info.is_main), leave=False)
    batches = ((rows, images.to(info.device), labels) for rows, images, labels in bar)
    written = fill_partial(path, shape, batches, grid.backbone)
    return int(all_reduce_sum(torch.tensor([written], device=info.device)).item())


def token_cache(config: ProbeConfig, path: Path, grid, dataset: Dataset, info: DistInfo) -> TokenCache:
    """The training split's tokens (no augmentation) at ``path``: reused when complete and made from the same
    backbone and images, else written once, each process filling its shard of the rows."""
    key = cache_key(config, dataset)
    if broadcast_object(info.is_main and open_cache(path, key) is not None, info):
        return open_cache(path, key)
    img = config.data.img_size
    T, C = grid.tokens(torch.zeros(1, 3, img, img, device=info.device)).shape[1:]  # (1, T, C)
    shape = (len(dataset), T, C)
    if info.is_main:
        create_partial(path, *shape)
    barrier()
    written = _fill_shard(config, path, shape, grid, dataset, info)
    if written != len(dataset):  # every process raises the same error
        raise ValueError(f"token cache {path}: {len(dataset) - written} of {len(dataset)} images gave no tokens")
    if info.is_main:
        finish_cache(path, key, np.asarray(dataset.targets), shape)
    barrier()
    cache = open_cache(path, key)
    if cache is None:
        raise ValueError(f"token cache {path} is incomplete after writing it")
    return cache


__all__ = [
    "ProbeSplits",
    "Rows",
    "cache_key",
    "cached_batches",
    "collate_rows",
    "eval_loader",
    "renumber",
    "split_holdout",
    "token_cache",
]
