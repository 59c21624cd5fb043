"""Image datasets given as a list of ``(path, label)``: the common shape of every evaluation loader.

``ImageFolder`` layouts (``<root>/<class>/<image>``) are read by torchvision's own
``ImageFolder``; datasets whose split lives in a text file (SOP, In-Shop, revisitop, Cars) build
their list and wrap it in :class:`ImageList`.

An image that cannot be decoded (a truncated or corrupted file) is an :class:`UnreadableImageError` naming
the file. The folders of :func:`image_folder` skip such images instead, with a warning naming each: their
item is ``None``, which :func:`collate_readable` (the dataset's ``collate_fn``) drops, so that a batch may
be empty and the evaluation counts them (as ``SafeImageFolder`` and ``collate_skip`` do for training).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

UNREADABLE = (OSError, ValueError, SyntaxError)  # what PIL raises on truncated or corrupted files


class UnreadableImageError(ValueError):
    """An image file that exists but cannot be decoded; the message names it."""


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """An image file as RGB, decoded in full.

    Raises:
        FileNotFoundError: no file at ``path``.
        UnreadableImageError: the file is truncated or not an image (naming it and PIL's reason).
    """
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise
    except UNREADABLE as error:
        raise UnreadableImageError(f"unreadable image {path}: {type(error).__name__}: {error}") from error


def collate_readable(batch: list) -> tuple[torch.Tensor, torch.Tensor]:
    """``default_collate`` of the readable samples (``None`` dropped): ``(images (B, C, H, W), labels (B,))``.

    A batch of unreadable images only is ``(tensor of shape (0,), empty int64 labels)``: skip it.
    """
    kept = [sample for sample in batch if sample is not None]
    if not kept:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    return torch.utils.data.default_collate(kept)


class ImageList(torch.utils.data.Dataset):
    """``(transform(image), label)`` for a list of ``(path, label)``; an optional box crops each image first.

    Args:
        samples: ``[(path, label), ...]``.
        transform: applied to the PIL image.
        boxes: optional ``[(x0, y0, x1, y1), ...]`` in pixels, one per sample (PIL ``crop``: right and
            bottom exclusive, floats rounded), e.g. revisitop's query boxes.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        transform: Callable | None = None,
        boxes: Sequence[Sequence[float]] | None = None,
    ):
        if boxes is not None and len(boxes) != len(samples):
            raise ValueError(f"boxes: {len(boxes)} boxes for {len(samples)} samples")
        self.samples = list(samples)
        self.transform = transform
        self.boxes = boxes

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        image = load_rgb(path)
        if self.boxes is not None:
            image = image.crop(tuple(self.boxes[index]))
        return (self.transform(image) if self.transform else image), label


class ReadableImageFolder(ImageFolder):
    """torchvision's ``ImageFolder`` whose unreadable images give ``None`` and a warning naming the file.

    Batch it with ``collate_fn=dataset.collate_fn`` (:func:`collate_readable`), which drops them.
    """

    collate_fn = staticmethod(collate_readable)

    def __getitem__(self, index: int):
        try:
            return super().__getitem__(index)
        except UnreadableImageError as error:
            warnings.warn(f"skipping {error}", stacklevel=2)
            return None


def image_folder(
    root: str | os.PathLike, transform: Callable | None = None, classes: Sequence[str] | None = None
) -> ReadableImageFolder:
    """torchvision's ``ImageFolder``: labels are the indices of the sorted class folders; unreadable images
    are skipped (:class:`ReadableImageFolder`: batch with ``collate_fn=dataset.collate_fn``).

    Args:
        classes: number the folders by this list instead (e.g. the training split's classes, so that
            a validation split missing a class keeps the same labels).

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: a class folder is not in ``classes``.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no image folder at {root}")
    dataset = ReadableImageFolder(str(root), transform=transform, loader=load_rgb)
    if classes is not None:
        index = {name: i for i, name in enumerate(classes)}
        unknown = sorted(set(dataset.classes) - set(index))
        if unknown:
            raise ValueError(f"{root}: class folders {unknown} are not among the {len(index)} given classes")
        dataset.samples = [(path, index[dataset.classes[y]]) for path, y in dataset.samples]
        dataset.imgs, dataset.targets = dataset.samples, [y for _, y in dataset.samples]
        dataset.classes, dataset.class_to_idx = list(classes), index
    return dataset


__all__ = [
    "IMG_EXTENSIONS",
    "ImageList",
    "ReadableImageFolder",
    "UnreadableImageError",
    "collate_readable",
    "image_folder",
    "load_rgb",
]
