"""What the heads train and are selected on: the seeded held-out split and the token cache."""

from __future__ import annotations

import numpy as np
import torch

from simpool.data.token_cache import open_cache, write_cache
from simpool.train.probe.data import cache_key, split_holdout
from simpool.train.probe.grid import build_grid

from .conftest import HEADS, config_of, tiny_backbone


def test_holdout_split_is_seeded_disjoint_and_complete():
    train, held = split_holdout(50, 0.1, seed=3)
    assert len(held) == 5 and len(train) == 45 and not set(train) & set(held)
    assert sorted([*train, *held]) == list(range(50))
    assert np.array_equal(split_holdout(50, 0.1, seed=3)[1], held)
    assert not np.array_equal(split_holdout(50, 0.1, seed=4)[1], held)
    assert [len(part) for part in split_holdout(2, 0.01, seed=0)] == [1, 1]  # at least one image on each side


def test_cache_gives_the_uncached_head_outputs(tiny_vit, tmp_path):
    grid = build_grid(tiny_backbone(tiny_vit), HEADS, [1e-3], num_classes=3, img_size=32, with_cls=True).eval()
    images, labels = torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2])
    batches = [(np.arange(0, 4), images[:4], labels[:4]), (np.arange(4, 6), images[4:], labels[4:])]
    key = {"backbone": "tiny"}
    cache = write_cache(tmp_path / "tokens.f16", key, 6, batches, grid.backbone)
    assert (tmp_path / "tokens.f16").stat().st_size == 6 * 17 * 32 * 2  # N x tokens x dim x float16
    tokens, cached_labels = cache[[5, 0, 3]]
    assert tokens.dtype == torch.float16 and torch.equal(cached_labels, labels[[5, 0, 3]])
    with torch.no_grad():
        torch.testing.assert_close(grid(tokens), grid(images[[5, 0, 3]]), atol=2e-3, rtol=2e-3)
    assert open_cache(tmp_path / "tokens.f16", key) is not None
    assert open_cache(tmp_path / "tokens.f16", {"backbone": "another"}) is None  # made from something else
    assert not list(tmp_path.glob("*.partial"))


def test_cache_key_follows_the_checkpoint_content_and_the_image_list(tmp_path):
    class Listing:  # what cache_key reads of an ImageFolder
        def __init__(self, samples):
            self.samples = samples

        def __len__(self):
            return len(self.samples)

    checkpoint = tmp_path / "weights.safetensors"
    checkpoint.write_bytes(b"first weights")
    config = config_of(tmp_path / "data", tmp_path / "run", model={"checkpoint": str(checkpoint)})
    images = Listing([("a/0.png", 0), ("b/1.png", 1)])
    key = cache_key(config, images)
    assert cache_key(config, images) == key
    checkpoint.write_bytes(b"other weights")  # replaced in place: same path, another backbone
    assert cache_key(config, images) != key
    checkpoint.write_bytes(b"first weights")
    assert cache_key(config, images) == key
    assert cache_key(config, Listing([("a/0.png", 0), ("b/1.png", 0)])) != key  # a label changed
    assert cache_key(config, Listing([("a/0.png", 0), ("b/2.png", 1)])) != key  # an image changed
