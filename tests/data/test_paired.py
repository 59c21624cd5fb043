"""``simpool.data.paired.PairedViews``: two exports of the same images read side by side, one seeded transform per
pair, and a refusal of folders that are not the same images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simpool.data.paired import PairedViews


def _folder(root: Path, value: int, names=("a/0.png", "a/1.png", "b/2.png")) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (value, value, value)).save(root / name)
    return root


def test_each_item_is_the_same_image_from_both_folders_through_one_seeded_transform(tmp_path):
    first, second = _folder(tmp_path / "x", 10), _folder(tmp_path / "y", 200)
    seen = []

    def transform(pair):
        seen.append(np.random.randint(1 << 30))  # under the item's seed: the same draw for the same key
        return tuple(int(np.asarray(image)[0, 0, 0]) for image in pair)

    data = PairedViews(first, second, transform, seed=4)
    assert len(data) == 3 and data.classes == ["a", "b"] and data.targets == [0, 0, 1]
    assert data[(1, 2)] == ((10, 200), 1)
    data[(1, 2)]
    data[(2, 2)]
    assert seen[0] == seen[1] != seen[2]  # (seed, epoch, index) fixes the draw; another epoch, another one
    assert PairedViews(first, second)[0][0][1].getpixel((0, 0)) == (200, 200, 200)  # no transform: the PIL pair


def test_folders_of_other_images_are_refused_naming_the_first_difference(tmp_path):
    first = _folder(tmp_path / "x", 10)
    with pytest.raises(ValueError, match=r"a/1.png is not in both"):
        PairedViews(first, _folder(tmp_path / "y", 200, names=("a/0.png", "a/5.png", "b/2.png")))
    with pytest.raises(ValueError, match="3 images against 4"):
        PairedViews(first, _folder(tmp_path / "w", 200, names=("a/0.png", "a/1.png", "b/2.png", "b/3.png")))
    with pytest.raises(ValueError, match="classes"):
        PairedViews(first, _folder(tmp_path / "v", 200, names=("a/0.png", "a/1.png", "c/2.png")))
