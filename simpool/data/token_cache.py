"""A memory-mapped float16 file of a frozen backbone's tokens, one row per image: ``simpool probe --cache``.

Layout of ``<path>`` (``tokens.f16``) and ``<path>.json`` (its header)::

    tokens.f16        raw float16, shape (N, T, C) in C order: image i's T tokens (prefix tokens first)
    tokens.f16.json   {"shape": [N, T, C], "labels": [...], "key": {...}}: what was cached and from what

The file costs ``N x T x C x 2`` bytes (ViT-S/16 at 224: 197 x 384 x 2 = 151 KB per image, 1.28M ImageNet
images: 194 GB). It is written atomically: rows go to ``<path>.partial`` (each process of a ``torchrun`` job
fills its own rows), which is flushed and renamed over ``<path>`` only when complete, and the header is written
last; so a run killed while caching leaves no cache, and a later run whose ``key`` matches (same backbone,
checkpoint, images, blocks) reuses it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from ..utils import atomic_write_bytes


def header_path(path: str | os.PathLike) -> Path:
    return Path(f"{path}.json")


class TokenCache:
    """A read-only view of a complete cache: ``cache[indices] -> (tokens (B, T, C) float16, labels (B,))``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        header = json.loads(header_path(path).read_text())
        self.shape = tuple(header["shape"])  # (N, T, C)
        self.labels = np.asarray(header["labels"], dtype=np.int64)  # (N,)
        self.key = header.get("key", {})
        self.tokens = np.memmap(self.path, dtype=np.float16, mode="r", shape=self.shape)

    def __getstate__(self) -> dict:
        """Pickled without the memmap (a loader worker started by spawn reopens the file instead of a copy)."""
        return {key: value for key, value in self.__dict__.items() if key != "tokens"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.tokens = np.memmap(self.path, dtype=np.float16, mode="r", shape=self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        indices = np.asarray(indices, dtype=np.int64)
        order = np.argsort(indices)  # a memmap reads sorted rows faster; put them back in the asked order
        rows = np.empty((len(indices), *self.shape[1:]), dtype=np.float16)
        rows[order] = self.tokens[indices[order]]
        return torch.from_numpy(rows), torch.from_numpy(self.labels[indices])  # (B, T, C), (B,)


def open_cache(path: str | os.PathLike, key: dict) -> TokenCache | None:
    """The complete cache at ``path`` made from ``key``, or ``None`` (absent, unfinished, or made from another)."""
    path = Path(path)
    if not (path.is_file() and header_path(path).is_file()):
        return None
    try:
        cache = TokenCache(path)
    except (ValueError, KeyError, OSError):
        return None
    expected = int(np.prod(cache.shape)) * 2
    if cache.key != key or path.stat().st_size != expected:
        return None
    return cache


def partial_path(path: str | os.PathLike) -> Path:
    """Where the rows of ``path`` are written until the cache is complete."""
    return Path(f"{path}.partial")


def create_partial(path: str | os.PathLike, num_images: int, tokens: int, dim: int) -> Path:
    """Allocate the ``(num_images, tokens, dim)`` float16 file that :func:`fill_partial` fills (one process)."""
    partial = partial_path(path)
    partial.parent.mkdir(parents=True, exist_ok=True)
    np.memmap(partial, dtype=np.float16, mode="w+", shape=(num_images, tokens, dim)).flush()
    return partial


def fill_partial(
    path: str | os.PathLike,
    shape: tuple[int, int, int],
    batches: Iterable[tuple[np.ndarray, torch.Tensor, torch.Tensor]],
    tokens_of: Callable[[torch.Tensor], torch.Tensor],
) -> int:
    """Write ``tokens_of(images) (B, T, C)`` as float16 at each batch's rows of the partial file of ``path``;
    returns how many rows were written. Several processes may fill disjoint rows of the same file together."""
    tokens = np.memmap(partial_path(path), dtype=np.float16, mode="r+", shape=shape)
    written = 0
    for rows, images, _ in batches:
        if len(rows) == 0:
            continue
        tokens[np.asarray(rows)] = tokens_of(images).to(torch.float16).cpu().numpy()  # (B, T, C)
        written += len(rows)
    tokens.flush()
    del tokens
    return written


def finish_cache(path: str | os.PathLike, key: dict, labels: np.ndarray, shape: tuple[int, int, int]) -> TokenCache:
    """Make the filled partial file the cache at ``path`` (fsync, rename), then write its header (one process)."""
    path, partial = Path(path), partial_path(path)
    with open(partial, "rb+") as file:
        os.fsync(file.fileno())
    header_path(path).unlink(missing_ok=True)  # an older cache's header must not describe the new rows
    os.replace(partial, path)
    header = {"shape": list(shape), "labels": np.asarray(labels).tolist(), "key": key}
    atomic_write_bytes(header_path(path), json.dumps(header).encode())
    return TokenCache(path)


def write_cache(
    path: str | os.PathLike,
    key: dict,
    num_images: int,
    batches: Iterable[tuple[np.ndarray, torch.Tensor, torch.Tensor]],
    tokens_of: Callable[[torch.Tensor], torch.Tensor],
) -> TokenCache:
    """Run ``tokens_of(images) -> (B, T, C)`` over ``batches`` of ``(row indices, images, labels)`` in one process
    and keep the tokens as float16 at those rows; returns the finished cache (atomic: see the module docstring).

    Raises:
        ValueError: the batches did not cover every row ``0 .. num_images - 1`` (e.g. unreadable images).
    """
    labels = np.full(num_images, -1, dtype=np.int64)
    tokens, shape = None, None
    try:
        for rows, images, targets in batches:
            batch = tokens_of(images).to(torch.float16).cpu().numpy()  # (B, T, C)
            if tokens is None:
                shape = (num_images, *batch.shape[1:])
                tokens = np.memmap(create_partial(path, *shape), dtype=np.float16, mode="r+", shape=shape)
            tokens[np.asarray(rows)] = batch
            labels[np.asarray(rows)] = targets.numpy()
        if tokens is None or (labels < 0).any():
            raise ValueError(f"token cache {path}: {(labels < 0).sum()} of {num_images} images gave no tokens")
        tokens.flush()
        del tokens
        return finish_cache(path, key, labels, shape)
    finally:
        partial_path(path).unlink(missing_ok=True)


def bytes_per_image(num_tokens: int, dim: int) -> int:
    """``num_tokens x dim x 2``: what one image costs in the cache (float16)."""
    return num_tokens * dim * 2


__all__ = [
    "TokenCache",
    "bytes_per_image",
    "create_partial",
    "fill_partial",
    "finish_cache",
    "open_cache",
    "partial_path",
    "write_cache",
]
