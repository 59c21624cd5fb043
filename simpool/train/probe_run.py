"""``simpool probe``'s protocol: a frozen backbone, a grid of heads x learning rates, held-out selection.

1. The training split is divided, seeded, into the part the heads train on and a held-out part
   (``probe.holdout``, 10% by default); the test split (``data.val_split``) is never seen until the end.
2. Every head x lr trains in one pass through :func:`simpool.train.probe.fit_grid` (timm's augmentation on the
   training part; or, with ``probe.cache``, no augmentation and the backbone's tokens read from a float16
   memmap written once: :mod:`simpool.data.token_cache`).
3. The head x lr of the best held-out top-1 is selected (and, per head, its best lr); then the test top-1/top-5
   of every entry is measured, with each head's parameters and GFLOPs.
4. When the test split has boxes (wsolevaluation metadata, e.g. ``simpool bench export --format wsol``) and
   masks (the bench's own export, re-rendered from its ``bench.json``), each head's attention is scored
   (MaxBoxAccV2, attention mass in the mask: :mod:`simpool.evaluate.attention_quality`).

The run folder (``train.output/train.name``) holds ``config.yaml``, ``log.csv``, ``last.pt`` (exact resume),
``results.json`` (atomic), ``probe.png`` and ``attention.png``, and ``tokens.f16`` with ``--cache``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path

import numpy as np
import torch
from timm.scheduler import create_scheduler_v2
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..data.datasets import SafeImageFolder, ShardSampler, StepSampler, collate_skip
from ..data.folders import image_folder
from ..data.token_cache import create_partial, fill_partial, finish_cache, open_cache
from ..models.loading import load_model
from ..utils import write_json
from .distributed import DistInfo, all_reduce_sum, barrier, broadcast_object
from .engine import configure_backends
from .probe import FrozenBackbone, build_grid, build_optimizer, fit_grid, grid_accuracy
from .probe_config import ProbeConfig, check_config, resolved_lrs
from .probe_report import probe_results
from .run import RunFolder, run_locked
from .supervised.recipe import build_transforms


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
    kept = [sample for sample in batch if sample is not None]
    rows = np.array([row for row, _, _ in kept], dtype=np.int64)
    images = torch.stack([image for _, image, _ in kept]) if kept else torch.empty(0)  # (B, 3, H, W)
    return rows, images, torch.tensor([label for _, _, label in kept], dtype=torch.long)


def _pairs(loader):
    """``(inputs, labels)`` of a loader of ``(inputs, labels, skipped)``."""
    return ((inputs, labels) for inputs, labels, _ in loader)


def cached_batches(cache, rows: np.ndarray, sampler, micro: int):
    """``(tokens (b, T, C) float16, labels, 0)`` micro-batches of ``sampler``'s keys ``(epoch, i)`` -> ``rows[i]``."""
    keys = [i for _, i in sampler]
    for start in range(0, len(keys), micro):
        tokens, labels = cache[rows[keys[start : start + micro]]]
        yield tokens, labels, 0


def probe(config: ProbeConfig) -> dict:
    """Run the protocol (see the module docstring) in ``train.output/train.name``; returns the results plus
    ``{"run_dir"}``. Resumes from ``last.pt`` when ``train.resume``."""
    check_config(config)
    return run_locked(config, config.train.name or f"probe-{config.model.name}", _probe)


def _probe(config: ProbeConfig, info: DistInfo, folder: RunFolder) -> dict:
    run, data, settings = config.train, config.data, config.probe
    device = info.device
    if run.num_threads:
        torch.set_num_threads(run.num_threads)
    configure_backends(device, run.tf32)
    started = time.perf_counter()
    torch.manual_seed(run.seed)  # the same heads on every process
    model = load_model(
        config.model.name, pool=config.model.pool, pool_kwargs=config.model.pool_kwargs,
        model_kwargs=config.model.kwargs, checkpoint=config.model.checkpoint or None,
        checkpoint_key=config.model.checkpoint_key,
    )  # fmt: skip
    size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if size is not None and tuple(size) != (data.img_size, data.img_size) and hasattr(model, "set_input_size"):
        model.set_input_size(img_size=data.img_size)  # a ViT at another --img-size: position embedding resampled
    backbone = FrozenBackbone(model.to(device), settings.blocks, settings.blocks_mode)
    train_tf, eval_tf = build_transforms(config)
    root = Path(data.root)
    train_set = SafeImageFolder(root / data.train_split, train_tf, seed=run.seed)
    plain_set = SafeImageFolder(root / data.train_split, eval_tf, seed=run.seed)
    classes = sorted({*train_set.classes, *(p.name for p in (root / data.val_split).iterdir() if p.is_dir())})
    for dataset in (train_set, plain_set):  # a class of the test split missing from training keeps its label
        renumber(dataset, classes)
    test_set = image_folder(root / data.val_split, eval_tf, classes)
    fit_rows, held_rows = split_holdout(len(train_set), settings.holdout, run.seed)
    grid = build_grid(
        backbone, settings.heads, resolved_lrs(settings), len(classes), data.img_size, settings.with_cls,
        settings.head_kwargs,
    )  # fmt: skip
    if run.batch_size % info.world_size:
        raise ValueError(f"batch size {run.batch_size} is not divisible by the {info.world_size} processes")
    micro = run.batch_size // info.world_size
    loader_kwargs = dict(num_workers=data.num_workers, pin_memory=device.type == "cuda")
    sampler = StepSampler(len(fit_rows), run.batch_size, info.rank, info.world_size, run.seed)
    cache = _token_cache(config, folder, info, grid, plain_set, micro, loader_kwargs) if settings.cache else None
    if cache is not None:

        def batches(epoch: int, start_update: int):
            sampler.set_epoch(epoch, start_update)
            return cached_batches(cache, fit_rows, sampler, micro)

        shard = held_rows[info.rank :: info.world_size]
        held_out = ((cache[shard[s : s + micro]]) for s in range(0, len(shard), micro))
    else:
        train_loader = DataLoader(
            Rows(train_set, fit_rows), batch_size=micro, sampler=sampler, collate_fn=collate_skip, **loader_kwargs
        )

        def batches(epoch: int, start_update: int):
            sampler.set_epoch(epoch, start_update)
            return train_loader

        held_out = _pairs(_eval_loader(Rows(plain_set, held_rows), micro, info, loader_kwargs, collate_skip))
    optimizer = build_optimizer(grid, settings.opt, run.batch_size, settings.weight_decay, settings.momentum)
    scheduler, _ = create_scheduler_v2(
        optimizer, sched="cosine", num_epochs=run.epochs, warmup_epochs=settings.warmup_epochs, min_lr=0.0,
        step_on_epochs=False, updates_per_epoch=sampler.updates_per_epoch,
    )  # fmt: skip
    engine = fit_grid(
        grid, optimizer, batches, run.epochs, sampler.updates_per_epoch, scheduler=scheduler, info=info,
        folder=folder, resume=run.resume, seed=run.seed, config=config, amp=run.amp, progress=run.progress,
        log_every=run.log_every, checkpoint_every=run.checkpoint_every, max_updates=run.max_updates,
        kill_at_update=run.kill_at_update,
    )  # fmt: skip
    finished = engine.counters["epoch"] >= run.epochs  # False when max_updates stopped it (resumable)
    held = grid_accuracy(grid, held_out, device)
    test_loader = _eval_loader(test_set, micro, info, loader_kwargs, test_set.collate_fn)
    test = grid_accuracy(grid, test_loader, device)
    result = None
    if info.is_main:
        result = probe_results(config, grid, held, test, device, folder, finished)
        result["wall_s"] = time.perf_counter() - started
        write_json(folder.path / "results.json", result)
    barrier()
    folder.close()
    return {**(result or {}), "run_dir": str(folder.path)}


def _eval_loader(dataset, micro: int, info: DistInfo, loader_kwargs: dict, collate) -> DataLoader:
    sampler = ShardSampler(len(dataset), info.rank, info.world_size)
    return DataLoader(dataset, batch_size=micro, sampler=sampler, collate_fn=collate, **loader_kwargs)


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


def _token_cache(config, folder: RunFolder, info: DistInfo, grid, dataset, micro: int, loader_kwargs):
    """The training split's tokens (no augmentation) in ``<run>/tokens.f16``: reused when complete and made from
    the same backbone and images, else written once, each process filling its shard of the rows."""
    path, key = folder.path / "tokens.f16", cache_key(config, dataset)
    if broadcast_object(info.is_main and open_cache(path, key) is not None, info):
        return open_cache(path, key)
    img = config.data.img_size
    T, C = grid.tokens(torch.zeros(1, 3, img, img, device=info.device)).shape[1:]  # (1, T, C)
    shape = (len(dataset), T, C)
    if info.is_main:
        create_partial(path, *shape)
    barrier()
    rows = Rows(dataset, np.arange(len(dataset))[info.rank :: info.world_size], with_index=True)
    loader = DataLoader(rows, batch_size=micro, collate_fn=collate_rows, **loader_kwargs)
    bar = tqdm(loader, desc="cache tokens", disable=not (config.train.progress and info.is_main), leave=False)
    written = fill_partial(path, shape, bar, lambda images: grid.backbone(images.to(info.device)))
    written = int(all_reduce_sum(torch.tensor([written], device=info.device)).item())
    if written != len(dataset):  # every process raises the same error
        raise ValueError(f"token cache {path}: {len(dataset) - written} of {len(dataset)} images gave no tokens")
    if info.is_main:
        finish_cache(path, key, np.asarray(dataset.targets), shape)
    barrier()
    cache = open_cache(path, key)
    if cache is None:
        raise ValueError(f"token cache {path} is incomplete after writing it")
    return cache


__all__ = ["cache_key", "cached_batches", "probe", "split_holdout"]
