"""Fashion-MNIST from its IDX files (Debian package ``dataset-fashion-mnist``, or any folder)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def fashion_mnist_dir(root: str | os.PathLike | None = None) -> Path:
    """The folder of the IDX files: ``root``, else ``$SIMPOOL_FASHION_MNIST``, else Debian's."""
    return Path(root or os.environ.get("SIMPOOL_FASHION_MNIST") or DEFAULT_DIR)


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes, gzipped or not.

    Not torchvision's ``read_sn3_pascalvincent_tensor``: since 0.29 it reads the file as it is, without
    decompressing, and Debian ships the files gzipped (it then fails with a bare ``AssertionError``).
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as file:
        data = file.read()
    magic = int.from_bytes(data[:4], "big")
    if magic >> 8 != 0x08:  # 0x0000 08 nn: unsigned bytes, nn dimensions
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (magic {magic:#x})")
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"Fashion-MNIST file {stem}[.gz] not found in {folder}. Install it with "
        "`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or download the four IDX files "
        "and pass their folder with --fashion-mnist-dir (or set SIMPOOL_FASHION_MNIST)."
    )


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 28, 28)`` uint8 and labels ``(N,)`` int64 of the ``train`` (60k) or ``test`` (10k) split."""
    if split not in _FILES:
        raise ValueError(f"split must be one of {sorted(_FILES)}, got {split!r}")
    folder = fashion_mnist_dir(root)
    images_stem, labels_stem = _FILES[split]
    images = _read_idx(_find(folder, images_stem))
    labels = _read_idx(_find(folder, labels_stem)).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{folder}: {len(images)} images but {len(labels)} labels in the {split} split")
    return images, labels
