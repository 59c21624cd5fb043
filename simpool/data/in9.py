"""ImageNet-9 background variations (Xiao et al., ICLR 2021) in their own layout.

Layout: ``<root>/<variation>/val/<class>/<image>`` with variations ``original``, ``only_fg``, ``no_fg``,
``only_bg_b``, ``only_bg_t``, ``mixed_same``, ``mixed_rand``, ``mixed_next`` (plus ``fg_mask``, which
holds masks, not images). Sorted class folders give labels 0-8 (``00_dog`` ... ``08_fish``). The
mapping from ImageNet's 1000 classes to these 9 is the JSON file shipped with the data
(``in_to_in9.json``: ImageNet index as a string -> IN-9 label, -1 for the 630 classes outside IN-9).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from .folders import image_folder

VARIATIONS = ("original", "only_fg", "no_fg", "only_bg_b", "only_bg_t", "mixed_same", "mixed_rand", "mixed_next")
NOT_IMAGES = ("fg_mask",)


def in9_variations(root: str | os.PathLike) -> list[str]:
    """The variations present under ``root`` (folders with a ``val/`` subfolder), in the paper's order first.

    Raises:
        FileNotFoundError: none is present.
    """
    root = Path(root)
    present = sorted(p.name for p in root.iterdir() if (p / "val").is_dir() and p.name not in NOT_IMAGES)
    if not present:
        raise FileNotFoundError(f"no <variation>/val/ folders under {root}")
    return [v for v in VARIATIONS if v in present] + [v for v in present if v not in VARIATIONS]


def in9_classes(root: str | os.PathLike, variations: Sequence[str] | None = None) -> list[str]:
    """Sorted class folder names over all ``variations`` (default: every one present)."""
    variations = variations or in9_variations(root)
    return sorted({p.name for v in variations for p in (Path(root) / v / "val").iterdir() if p.is_dir()})


def class_labels(classes: Sequence[str]) -> dict[str, int]:
    """Folder name -> label: the ``NN_`` prefix when every folder has one (``00_dog`` ... ``08_fish``, the bench's
    ``NN_name``), so that a missing folder shifts no label; otherwise the position in sorted order."""
    prefixes = [re.match(r"^(\d+)_", name) for name in classes]
    if all(prefixes):
        return {name: int(match.group(1)) for name, match in zip(classes, prefixes, strict=True)}
    return {name: i for i, name in enumerate(sorted(classes))}


def in9_dataset(
    root: str | os.PathLike, variation: str, transform: Callable | None = None, classes: Sequence[str] | None = None
):
    """``<root>/<variation>/val`` as an ``ImageFolder`` whose labels are :func:`class_labels` of ``classes``.

    ``classes`` defaults to the variation's own folders; pass :func:`in9_classes` so that every
    variation is numbered alike even where one lacks a class folder.

    Raises:
        ValueError: a class folder is not in ``classes``.
    """
    dataset = image_folder(Path(root) / variation / "val", transform)
    classes = list(classes) if classes is not None else list(dataset.classes)
    unknown = sorted(set(dataset.classes) - set(classes))
    if unknown:
        raise ValueError(f"{variation}: class folders {unknown} are not among {classes}")
    labels = class_labels(classes)
    dataset.samples = [(path, labels[dataset.classes[y]]) for path, y in dataset.samples]
    dataset.imgs, dataset.targets = dataset.samples, [y for _, y in dataset.samples]
    dataset.classes, dataset.class_to_idx = sorted(labels, key=labels.get), labels
    return dataset


def load_in9_mapping(path: str | os.PathLike) -> torch.Tensor:
    """The 1000-to-9 mapping as a ``(1000,)`` integer tensor (-1: outside IN-9) from ``in_to_in9.json``.

    Raises:
        ValueError: keys are not the consecutive indices 0..n-1, or a value is outside -1..8.
    """
    table = json.loads(Path(path).read_text())
    indices = sorted(int(k) for k in table)
    if indices != list(range(len(indices))):
        raise ValueError(f"{path}: keys must be the class indices 0..{len(indices) - 1}")
    mapping = torch.tensor([int(table[str(i)]) for i in indices])
    if mapping.min() < -1 or mapping.max() > 8:
        raise ValueError(f"{path}: IN-9 labels must be in -1..8, found {mapping.min()}..{mapping.max()}")
    return mapping
