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
    cpu = torch.device("cpu")
    key = cache_key(config, images, cpu)
    assert cache_key(config, images, cpu) == key
    assert cache_key(config, images, torch.device("cuda")) != key  # tokens under bfloat16 autocast
    checkpoint.write_bytes(b"other weights")  # replaced in place: same path, another backbone
    assert cache_key(config, images, cpu) != key
    checkpoint.write_bytes(b"first weights")
    assert cache_key(config, images, cpu) == key
    assert cache_key(config, Listing([("a/0.png", 0), ("b/1.png", 0)]), cpu) != key  # a label changed
    assert cache_key(config, Listing([("a/0.png", 0), ("b/2.png", 1)]), cpu) != key  # an image changed


def test_the_cache_is_served_by_a_data_loader_with_workers(tiny_vit, tmp_path):
    """Cached micro-batches come from a DataLoader (workers, pinned memory on CUDA) over the cache's rows, in the
    sampler's order: the same with 2 workers as read directly from the memmap."""
    from torch.utils.data import DataLoader

    from simpool.data.datasets import StepSampler
    from simpool.train.distributed import DistInfo
    from simpool.train.probe.data import block, cached_batches, cached_loader

    grid = build_grid(tiny_backbone(tiny_vit), ["linear"], [1e-3], num_classes=3, img_size=32)
    images, labels = torch.randn(10, 3, 32, 32), torch.arange(10) % 3
    cache = write_cache(tmp_path / "tokens.f16", {}, 10, [(np.arange(10), images, labels)], grid.backbone)
    rows = np.array([1, 2, 3, 5, 8, 9, 0, 4])
    sampler = StepSampler(len(rows), 4, seed=0)  # 2 updates of 4
    sampler.set_epoch(1)
    loader = cached_loader(cache, rows, sampler, 4, workers=2, pin=False)
    assert isinstance(loader, DataLoader) and loader.num_workers == 2
    keys = [i for _, i in sampler]
    batches = list(cached_batches(loader))
    assert [len(b[1]) for b in batches] == [4, 4] and sorted(keys) == list(range(8))
    for start, (tokens, targets, skipped) in zip((0, 4), batches, strict=True):
        expected = cache[rows[keys[start : start + 4]]]
        assert torch.equal(tokens, expected[0]) and torch.equal(targets, expected[1]) and skipped == 0
    # a loader worker started by spawn gets the cache pickled: its path, not a copy of the tokens
    import pickle

    copy = pickle.loads(pickle.dumps(cache))
    assert len(pickle.dumps(cache)) < 1000 and torch.equal(copy[[3, 1]][0], cache[[3, 1]][0])
    # each process fills a contiguous block of the rows, the blocks in rank order cover them once
    blocks = [block(10, DistInfo(rank, 3, rank, torch.device("cpu"))) for rank in range(3)]
    assert [list(range(10))[b] for b in blocks] == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9]]


def test_a_test_class_missing_from_training_is_refused_by_name(tmp_path, write_image_folder):
    import pytest

    from simpool.train.probe.data import ProbeSplits

    write_image_folder(tmp_path / "data" / "train", 2, per_class=2, size=8, class_names=["cat", "dog"])
    write_image_folder(tmp_path / "data" / "test", 3, per_class=1, size=8, class_names=["cat", "emu", "owl"])
    config = config_of(tmp_path / "data", tmp_path / "run")
    with pytest.raises(ValueError, match=r"^test set class\(es\) emu, owl have no folder in the training split") as e:
        ProbeSplits.load(config)
    assert "\n" not in str(e.value)
