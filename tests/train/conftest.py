"""Tiny ImageFolders written in tmp_path for the training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# A 1-block width-32 ViT on 32x32 images: a training step takes milliseconds on one CPU thread.
TINY_VIT = {
    "model.name": "vit_tiny_patch16_224",
    "model.kwargs": "{img_size: 32, patch_size: 8, embed_dim: 32, depth: 1, num_heads: 2}",
}


def write_image_folder(root: Path, classes: int = 2, per_class: int = 8, size: int = 32, seed: int = 0) -> Path:
    """``root/<class>/<i>.png``: class c is a square bright in colour channel c % 3 at a random place on noise.

    Colour survives the flips and crops of training augmentation, so a tiny model learns it in a few updates.
    """
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 80, size=(size, size, 3), dtype=np.uint8)
            half = size // 2
            y, x = rng.integers(0, size - half, size=2)
            image[y : y + half, x : x + half, c % 3] = 250
            Image.fromarray(image).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """``tmp_path/data/{train,val}``: 2 classes, 16 training and 8 validation images per class."""
    root = tmp_path / "data"
    write_image_folder(root / "train", per_class=16, seed=0)
    write_image_folder(root / "val", per_class=8, seed=1)
    return root


def overrides(data: Path, output: Path, **extra) -> list[str]:
    """``key=value`` overrides for a deterministic tiny CPU run (no augmentation beyond crop and flip)."""
    values = {
        **TINY_VIT,
        "data.root": str(data),
        "data.img_size": 32,
        "data.num_workers": 0,
        "data.color_jitter": 0.0,
        "data.crop_pct": 1.0,
        "data.scale": "[0.5, 1.0]",
        "train.output": str(output),
        "train.name": "run",
        "train.device": "cpu",
        "train.num_threads": 1,
        "train.log_every": 1,
        "mixup.smoothing": 0.0,
        "sched.warmup_epochs": 0,
        "optim.lr": 1e-3,
        "optim.weight_decay": 0.0,
    }
    values.update({key.replace("__", "."): value for key, value in extra.items()})
    return [f"{key}={value}" for key, value in values.items()]
