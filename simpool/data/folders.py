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

import numpy as np
import torch
from PIL import Image
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

UNREADABLE = (OSError, ValueError, SyntaxError)  # what PIL raises on truncated or corrupted files


class UnreadableImageError(ValueError):
    """An image file that exists but cannot be decoded; the message names it."""


# PIL modes of one channel wider than 8 bits, and the value each reads as full white. 16-bit PNGs and TIFFs open
# as "I;16*" (0..65535). A 32-bit float image ("F", e.g. a float TIFF) is taken to hold intensities in [0, 1]:
# values outside are refused rather than guessed. PIL's own convert("RGB") clips instead (a 16-bit image comes
# out nearly white, a [0, 1] float one black).
WIDE_MODES = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0, "F": 1.0}


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """An image file as 8-bit RGB, decoded in full; 16-bit and float images scaled from their real range.

    Raises:
        FileNotFoundError: no file at ``path``.
        UnreadableImageError: the file is truncated or not an image, a float image has values outside [0, 1],
            or a 32-bit integer image has no range to read it with (naming the file and the reason).
    """
    try:
        with Image.open(path) as image:
            return to_rgb(image, path)
    except FileNotFoundError:
        raise
    except UnreadableImageError:
        raise
    except UNREADABLE as error:
        raise UnreadableImageError(f"unreadable image {path}: {type(error).__name__}: {error}") from error


def to_rgb(image: Image.Image, path: str | os.PathLike = "image") -> Image.Image:
    """``image`` as 8-bit RGB: PIL's ``convert`` for 8-bit modes; a 16-bit or float one (:data:`WIDE_MODES`)
    scaled to 0..255 from its full range first."""
    if image.mode == "I":
        raise UnreadableImageError(
            f"unreadable image {path}: 32-bit integer pixels have no range to read them with; save it as 8- or "
            "16-bit, or as float in [0, 1]"
        )
    if image.mode not in WIDE_MODES:
        return image.convert("RGB")
    pixels = np.asarray(image, dtype=np.float64)  # (H, W)
    white = WIDE_MODES[image.mode]
    if image.mode == "F" and (not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 1):
        raise UnreadableImageError(
            f"unreadable image {path}: float pixels span [{np.nanmin(pixels):.4g}, {np.nanmax(pixels):.4g}], "
            "expected [0, 1]"
        )
    grey = np.rint(pixels / white * 255).astype(np.uint8)  # (H, W)
    return Image.fromarray(grey).convert("RGB")


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
