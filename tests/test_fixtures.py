"""The shared fixtures of ``tests/conftest.py`` build what they promise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image


def test_tiny_models_classify_32px_images(tiny_vit, tiny_resnet, tiny_convnext):
    images = torch.randn(2, 3, 32, 32)
    vit = tiny_vit(num_classes=3).eval()
    assert vit(images).shape == (2, 3) and vit.num_features == 32 and len(vit.blocks) == 1
    assert vit.patch_embed.grid_size == (4, 4)
    assert tiny_vit(depth=2, num_classes=0)(images).shape == (2, 32)  # keyword arguments override TINY_VIT
    assert tiny_resnet()(images).shape == (2, 2)
    convnext = tiny_convnext(num_classes=4)
    assert convnext(images).shape == (2, 4) and convnext.num_features == 32


def test_tiny_vit_args_are_the_kwargs(tiny_vit_kwargs, tiny_vit_args):
    assert tiny_vit_args == [f"{key}={value}" for key, value in tiny_vit_kwargs.items()]
    tiny_vit_kwargs["depth"] = 5  # a fresh copy per test
    from tests.conftest import TINY_VIT, TINY_VIT_YAML

    assert (
        TINY_VIT["depth"] == 1
        and TINY_VIT_YAML == "{img_size: 32, patch_size: 8, embed_dim: 32, depth: 1, num_heads: 2}"
    )


def test_image_folder_layouts(tmp_path, write_image_folder):
    root = write_image_folder(tmp_path / "squares", classes=3, per_class=2, size=16)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png")) == [
        f"class_{c}/{i:03d}.png" for c in range(3) for i in range(2)
    ]
    for c in range(3):  # the bright square is in colour channel c
        pixels = np.asarray(Image.open(root / f"class_{c}" / "000.png"))
        assert pixels.shape == (16, 16, 3) and pixels.max(axis=(0, 1)).argmax() == c
    named = write_image_folder(
        tmp_path / "named",
        per_class=1,
        size=(10, 20),
        colours=[(200, 0, 0)],
        noise=0.0,
        class_names=["red"],
        suffix=".jpg",
    )
    red = np.asarray(Image.open(named / "red" / "000.jpg"))
    assert red.shape == (10, 20, 3) and abs(int(red[..., 0].mean()) - 200) <= 3  # JPEG: close, not exact
    with pytest.raises(ValueError, match="valid"):
        write_image_folder(tmp_path / "bad", pattern="stripes")


def test_train_overrides_resolve(tmp_path, train_overrides):
    from simpool.train.config import load_config
    from simpool.train.supervised.config import SupervisedConfig

    config = load_config(SupervisedConfig, None, train_overrides(tmp_path / "data", tmp_path / "runs", train__epochs=3))
    assert config.train.epochs == 3 and config.model.kwargs["embed_dim"] == 32 and config.train.device == "cpu"
