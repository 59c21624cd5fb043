"""Two renderings of each image as one dataset: views that share the object and not the background.

DINO matches crops of one image, so whatever the crops share is enough for its loss. On the SimPool bench that
is the background photo as much as the object (docs/RESULTS.md measures a bench DINO backbone that learned the
photo and nothing of the object). Two exports of the same bench images, one per background (``simpool bench
export --variant original`` and ``--variant mixed_rand``: the same object, size, place and tint on another photo),
read side by side give pairs whose only common content is the object; ``MultiCropTransform`` cuts the first
global crop from the first and the second from the second.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset

from .datasets import SafeImageFolder, seeded


class PairedViews(Dataset):
    """``dataset[(epoch, index)]`` = ``(transform((image_a, image_b)), target)`` of two ImageFolders of the same images.

    The two folders must hold the same file names under the same classes (two exports of one bench split); the
    transform runs under the seed of ``(seed, epoch, index)``, as :class:`~simpool.data.datasets.SafeImageFolder`'s.
    An image unreadable in either folder gives ``None`` (dropped and counted by the collate function).

    Raises:
        ValueError: the folders differ in their classes or file names (the first difference named).
    """

    def __init__(self, first: str | Path, second: str | Path, transform: Callable | None = None, seed: int = 0):
        self.first, self.second = SafeImageFolder(first), SafeImageFolder(second)
        if self.first.classes != self.second.classes:
            raise ValueError(f"{second}: classes {self.second.classes} differ from {first}'s {self.first.classes}")
        names = [(Path(p).relative_to(first), t) for p, t in self.first.samples]
        others = [(Path(p).relative_to(second), t) for p, t in self.second.samples]
        if names != others:
            differ = next((a for a, b in zip(names, others, strict=False) if a != b), None)
            what = f"{differ[0]} is not in both" if differ else f"{len(names)} images against {len(others)}"
            raise ValueError(f"{second}: not the images of {first} ({what}); export the same split, seed and count")
        self.classes, self.targets = self.first.classes, self.first.targets
        self.transform, self.seed = transform, seed

    def __len__(self) -> int:
        return len(self.first)

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        first, second = self.first[index], self.second[index]  # (PIL image, target) or None: no transform
        if first is None or second is None:
            return None
        pair = (first[0], second[0])
        if self.transform is not None:
            with seeded(hash((self.seed, epoch, index)) % 2**31):
                pair = self.transform(pair)
        return pair, first[1]
