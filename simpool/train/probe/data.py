"""What the probe's heads train and are selected on: the splits, keyed rows, and the token cache.

The training split is divided, seeded, into the part the heads train on and a held-out part
(``probe.holdout``); the test sets (``data.val_split`` then ``probe.test_splits``; an IN-9 export folder gives one
per variant) are only read at the end. With ``probe.cache`` the backbone's tokens of the unaugmented training
split are written once to a float16 memmap (:mod:`simpool.data.token_cache`), each process filling its
contiguous block of the rows, and every epoch reads them through a ``DataLoader`` (workers, pinned memory).
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
from ...data.in9 import VARIATIONS, in9_variations
from ...data.token_cache import TokenCache, create_partial, fill_partial, finish_cache, open_cache
from ...data.transforms import build_transforms
from ..distributed import DistInfo, all_reduce_sum, barrier, broadcast_object
from .config import ProbeConfig


def split_holdout(num_images: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(training rows, held-out rows)`` of ``range(num_images)``, each sorted; at least one of each."""
    order = torch.randperm(num_images, generator=torch.Generator().manual_seed(seed)).numpy()
    held = min(max(1, round(fraction * num_images)), num_images - 1)
    if held < 1:
        raise ValueError(f"{num_images} training image(s): too few to hold some out")
    return np.sort(order[held:]), np.sort(order[:held])


def test_folders(root: Path, splits: list[str]) -> dict[str, Path]:
    """``{name: folder}`` of the test sets: each split a folder under ``root``, named by the IN-9 variant in its
    path (``in9/mixed_rand/val`` -> ``mixed_rand``) or else as given; a folder of IN-9 variants (``simpool bench
    export --format in9``: ``<variant>/val/``) gives one test set per variant, named by it.

    Raises:
        ValueError: two test sets take one name.
    """
    folders: dict[str, Path] = {}
    for split in splits:
        path = root / split
        try:
            present = in9_variations(path)  # <variant>/val/ folders
        except (FileNotFoundError, NotADirectoryError):
            present = []
        named = {v: path / v / "val" for v in present} if set(present) & set(VARIATIONS) else {}
        if not named:
            name = next((part for part in reversed(Path(split).parts) if part in VARIATIONS), split)
            named = {name: path}
        for name, folder in named.items():
            if name in folders:
                raise ValueError(f"test sets {folders[name]} and {folder} are both named {name!r}: give each once")
            folders[name] = folder
    return folders


@dataclass
class ProbeSplits:
    """The probe's images: the training split augmented (``train``) and plain (``plain``: the held-out part and
    the cache read it), the test sets (``tests``: name -> dataset; the first is ``data.val_split``, the one whose
    boxes are scored; their classes are the training split's, each a subset), the
    classes, and the rows of the two parts of the training split.
    """

    train: SafeImageFolder
    plain: SafeImageFolder
    tests: dict[str, Dataset]
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
        folders = test_folders(root, [data.val_split, *config.probe.test_splits])
        tested = {p.name for folder in folders.values() for p in folder.iterdir() if p.is_dir()}
        missing = sorted(tested - set(train.classes))
        if missing:
            raise ValueError(
                f"test set class(es) {', '.join(missing)} have no folder in the training split "
                f"{root / data.train_split}; test sets may hold only the training split's classes"
            )
        classes = list(train.classes)
        tests = {name: image_folder(folder, eval_tf, classes) for name, folder in folders.items()}
        fit_rows, held_rows = split_holdout(len(train), config.probe.holdout, seed)
        return cls(train, plain, tests, classes, fit_rows, held_rows)


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


def block(count: int, info: DistInfo) -> slice:
    """This process's contiguous block of ``range(count)`` (the blocks of the ranks, in order, cover it)."""
    bounds = np.linspace(0, count, info.world_size + 1).round().astype(int)
    return slice(int(bounds[info.rank]), int(bounds[info.rank + 1]))


def eval_loader(dataset: Dataset, micro: int, info: DistInfo, collate, num_workers: int = 0) -> DataLoader:
    """This process's shard of ``dataset`` in order (every image counted once over the processes)."""
    sampler = ShardSampler(len(dataset), info.rank, info.world_size)
    pin = info.device.type == "cuda"
    return DataLoader(dataset, micro, sampler=sampler, collate_fn=collate, num_workers=num_workers, pin_memory=pin)


class CachedRows(Dataset):
    """The rows ``rows`` of a token cache: item ``i`` (or a sampler's key ``(epoch, i)``) is
    ``(tokens (T, C) float16, label)`` of cache row ``rows[i]``; served by a ``DataLoader`` (its workers open the
    memmap themselves)."""

    def __init__(self, cache: TokenCache, rows: np.ndarray):
        self.cache, self.rows = cache, np.asarray(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key) -> tuple[torch.Tensor, int]:
        i = key[1] if isinstance(key, tuple) else key
        tokens, labels = self.cache[[int(self.rows[i])]]  # (1, T, C), (1,)
        return tokens[0], int(labels[0])


def collate_tokens(batch: list) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tokens (B, T, C), labels (B,))`` of :class:`CachedRows` items."""
    return torch.stack([tokens for tokens, _ in batch]), torch.tensor([label for _, label in batch], dtype=torch.long)


def cached_loader(cache: TokenCache, rows: np.ndarray, sampler, micro: int, workers: int, pin: bool) -> DataLoader:
    """The cache's rows ``rows`` in ``sampler``'s order (keys ``(epoch, i)`` or ``i``), ``micro`` per batch."""
    dataset = CachedRows(cache, rows)
    return DataLoader(dataset, micro, sampler=sampler, collate_fn=collate_tokens, num_workers=workers, pin_memory=pin)


def cached_batches(loader: DataLoader):
    """The training part's ``(tokens (b, T, C) float16, labels, 0)`` micro-batches from a :func:`cached_loader`."""
    return ((tokens, labels, 0) for tokens, labels in loader)


def cache_autocast(device: torch.device) -> torch.dtype | None:
    """The autocast dtype the cache's tokens are computed under on ``device``: bfloat16 on CUDA, none elsewhere."""
    return torch.bfloat16 if device.type == "cuda" else None


def cache_key(config: ProbeConfig, dataset, device: torch.device) -> dict:
    """What the cached tokens depend on: a cache made from anything else is rewritten. The checkpoint counts by
    its content (SHA-256), not its path, the images by their paths and labels (``dataset.samples`` of an
    ImageFolder), so a checkpoint or a folder replaced in place is not served stale tokens, and the autocast dtype
    of ``device`` (:func:`cache_autocast`) by its name."""
    data = config.data
    checkpoint = config.model.checkpoint
    samples = getattr(dataset, "samples", None)
    listing = "\n".join(f"{path}\t{label}" for path, label in samples) if samples is not None else None
    return {
        "model": dataclasses.asdict(config.model),
        "checkpoint_sha256": _sha256_file(checkpoint) if checkpoint else None,
        "images_sha256": hashlib.sha256(listing.encode()).hexdigest() if listing is not None else None,
        "blocks": config.probe.blocks,
        "block_indices": list(config.probe.block_indices),
        "blocks_mode": config.probe.blocks_mode,
        "root": str(Path(data.root).resolve() / data.train_split),
        "num_images": len(dataset),
        "img_size": data.img_size,
        "crop_pct": data.crop_pct,
        "interpolation": data.interpolation,
        "mean": list(data.mean),
        "std": list(data.std),
        "autocast": str(cache_autocast(device)),
    }


def _sha256_file(path: str) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _fill_shard(config: ProbeConfig, path: Path, shape: tuple, grid, dataset: Dataset, info: DistInfo) -> int:
    """Write this process's contiguous block of the cache's rows (the backbone of ``grid`` over ``dataset``'s
    images, under bfloat16 autocast on CUDA); returns how many images gave tokens over all processes."""
    rows = Rows(dataset, np.arange(len(dataset))[block(len(dataset), info)], with_index=True)
    loader = DataLoader(
        rows,
        batch_size=config.train.batch_size // info.world_size,
        collate_fn=collate_rows,
        num_workers=config.data.num_workers,
        pin_memory=info.device.type == "cuda",
    )
    bar = tqdm(loader, desc="cache tokens", disable=not (config.train.progress and info.is_main), leave=False)
    batches = ((rows, images.to(info.device, non_blocking=True), labels) for rows, images, labels in bar)
    dtype = cache_autocast(info.device)
    with torch.autocast(info.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        written = fill_partial(path, shape, batches, grid.backbone)
    return int(all_reduce_sum(torch.tensor([written], device=info.device)).item())


def token_cache(config: ProbeConfig, path: Path, grid, dataset: Dataset, info: DistInfo) -> TokenCache:
    """The training split's tokens (no augmentation) at ``path``: reused when complete and made from the same
    backbone and images, else written once, each process filling its shard of the rows."""
    key = cache_key(config, dataset, info.device)
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
    "CachedRows",
    "ProbeSplits",
    "block",
    "Rows",
    "cache_autocast",
    "cache_key",
    "cached_batches",
    "cached_loader",
    "collate_tokens",
    "collate_rows",
    "eval_loader",
    "split_holdout",
    "test_folders",
    "token_cache",
]
