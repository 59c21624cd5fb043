"""``loader``: the training loaders alone (the ResNet-50 recipe's 3 RandAugment views, DINO's 8 crops), images/s per
process with its default workers; ``probe_cache``: filling the token cache with ViT-S/16 tokens and reading it through
the probe's own loader."""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from simpool import create_model
from simpool.data.config import default_workers
from simpool.data.token_cache import create_partial, fill_partial, finish_cache
from simpool.train.config import load_config
from simpool.train.dino.config import DinoConfig
from simpool.train.dino.recipe import build_loader
from simpool.train.engine import single_process
from simpool.train.probe.data import cached_loader
from simpool.train.supervised.config import SupervisedConfig
from simpool.train.supervised.recipe import build_loaders
from simpool.train.validation import autocast

from .common import GPUS, IMAGENET_TRAIN, ROOT, image_folder, sync


def loader_rate(loader, batches: int, device: torch.device | None = None) -> float:
    """Images/s of ``loader`` over ``batches`` batches after the first (the workers' start-up); with ``device``,
    each batch's first tensor is copied there (non-blocking, as training does) and the clock waits for the copies."""
    iterator = iter(loader)
    next(iterator)
    start, images = time.perf_counter(), 0
    for batch in itertools.islice(iterator, batches):
        if device is not None:
            batch[0].to(device, non_blocking=True)
        images += len(batch[1])
    if device is not None:
        sync(device)
    return images / (time.perf_counter() - start)


def check_loader(smoke: bool, device: torch.device) -> dict:
    workers, batch, batches = (0, 4, 2) if smoke else (default_workers(), 64, 10)
    info = single_process(device)
    rates = {}
    with tempfile.TemporaryDirectory() as folder:
        image_folder(Path(folder) / "train", 2, 8 if smoke else 384, (64, 48) if smoke else (500, 375))
        overrides = [f"data.root={folder}", "data.dataset=imagefolder", f"data.num_workers={workers}"]
        overrides += [f"train.batch_size={batch}"]
        supervised = load_config(SupervisedConfig, ROOT / "configs" / "resnet50_gap.yaml", overrides)
        rates["supervised"] = loader_rate(build_loaders(supervised, info)[1], batches)
        dino = load_config(DinoConfig, ROOT / "configs" / "dino_vit_small_cls.yaml", overrides)
        rates["dino"] = loader_rate(build_loader(dino, info)[1], batches)
    return {
        "workers": workers,
        "images_per_s": rates,
        "summary": f"{rates['supervised']:.0f} img/s (ResNet-50 recipe, 3 views), {rates['dino']:.0f} img/s "
        f"(DINO, 8 crops) per process with {workers} workers, on noise JPEGs of 500 x 375",
        "for_8_gpus": f"{GPUS} processes ({workers} workers each) are fed at most {GPUS * rates['supervised']:.0f} "
        f"img/s in all (ResNet-50 recipe), {GPUS * rates['dino']:.0f} (DINO); noise decodes slower than photos: a "
        "lower bound",
    }


def check_probe_cache(smoke: bool, device: torch.device) -> dict:
    """ViT-S/16 tokens of random images written to a cache under bf16 autocast, then read as the probe reads them:
    one :class:`CachedRows` item per image through :func:`cached_loader` (its workers, pinned memory), in a random
    order, each batch copied to the device."""
    count, batch, workers = (32, 8, 1) if smoke else (2048, 128, default_workers())
    kwargs = dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2) if smoke else {}
    name, size = ("vit_tiny_patch16_224", 32) if smoke else ("vit_small_patch16_224", 224)
    backbone = create_model(name, pool="default", num_classes=0, **kwargs).to(device).eval()
    images = torch.randn(batch, 3, size, size, device=device)  # (B, 3, S, S), the same every batch
    with torch.no_grad():
        shape = (count, *backbone.forward_features(images[:1]).shape[1:])  # (N, T, C)

    @torch.no_grad()
    def tokens_of(x: torch.Tensor) -> torch.Tensor:
        with autocast(device, "bf16" if device.type == "cuda" else "none"):
            return backbone.forward_features(x)  # (B, T, C)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tokens.f16"
        create_partial(path, *shape)
        rows = [np.arange(start, min(start + batch, count)) for start in range(0, count, batch)]
        start = time.perf_counter()
        fill_partial(path, shape, ((r, images[: len(r)], None) for r in rows), tokens_of)
        cache = finish_cache(path, {"check": "gpu"}, np.zeros(count, dtype=np.int64), shape)
        sync(device)
        fill_s = time.perf_counter() - start
        order = np.random.default_rng(0).permutation(count).tolist()  # the sampler: a random epoch order
        reader = cached_loader(cache, np.arange(count), order, batch, workers, pin=device.type == "cuda")
        read_rate = loader_rate(reader, count // batch - 1, device)  # every batch after the first
    fill_rate, megabytes = count / fill_s, read_rate * shape[1] * shape[2] * 2 / 2**20
    fill_min, read_min = IMAGENET_TRAIN / (GPUS * fill_rate) / 60, IMAGENET_TRAIN / read_rate / 60
    return {
        "images": count,
        "tokens_shape": list(shape[1:]),
        "workers": workers,
        "fill_images_per_s": fill_rate,
        "read_images_per_s": read_rate,
        "read_mb_per_s": megabytes,
        "summary": f"fill {fill_rate:.0f} img/s, read {read_rate:.0f} img/s ({megabytes:.0f} MB/s) by the probe's "
        f"loader (workers: {workers})",
        "for_8_gpus": f"ImageNet's cache: filled in {fill_min:.1f} min by 8 GPUs, an epoch read in {read_min:.1f} "
        "min by one process (page cache warm)",
    }
