"""Sampling, fractions, unreadable images, top-k counts: hand-made cases with exact answers."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from simpool.data.datasets import SafeImageFolder, StepSampler, collate_skip, first_fraction_per_class, seeded
from simpool.train.validation import topk_correct


def test_fraction_keeps_the_first_files_of_each_class():
    samples = [(f"c0/{i}.png", 0) for i in reversed(range(10))] + [(f"c1/{i}.png", 1) for i in range(3)]
    # 20% of 10 = 2 (file-name order, not listing order); 20% of 3 = 0.6 -> at least one image
    assert first_fraction_per_class(samples, 0.2) == [("c0/0.png", 0), ("c0/1.png", 0), ("c1/0.png", 1)]


def test_the_union_of_process_slices_is_the_single_process_batch():
    single = list(StepSampler(20, global_batch=8, seed=5))
    ranks = [list(StepSampler(20, global_batch=8, rank=r, world_size=2, seed=5)) for r in range(2)]
    assert len(single) == 16  # 20 // 8 = 2 updates; the incomplete third batch is dropped
    for update in range(2):
        chunk = single[update * 8 : (update + 1) * 8]
        assert ranks[0][update * 4 : (update + 1) * 4] + ranks[1][update * 4 : (update + 1) * 4] == chunk


def test_restarting_mid_epoch_yields_the_rest_of_the_epoch():
    sampler = StepSampler(40, global_batch=8, seed=1)
    sampler.set_epoch(3)
    whole = list(sampler)
    sampler.set_epoch(3, start_update=2)
    assert list(sampler) == whole[16:] and len(sampler) == 24
    sampler.set_epoch(4)
    assert list(sampler) != whole  # a new order each epoch


def test_augmentation_depends_only_on_seed_epoch_and_index(tmp_path, write_image_folder):
    from timm.data import create_transform

    write_image_folder(tmp_path, classes=1, per_class=2)
    dataset = SafeImageFolder(tmp_path, transform=create_transform(32, is_training=True), seed=0)
    a, b = dataset[(0, 1)][0], dataset[(0, 1)][0]
    torch.rand(10)  # the global RNG has moved on: no effect
    assert torch.equal(a, b) and torch.equal(a, dataset[(0, 1)][0])
    assert not torch.equal(a, dataset[(1, 1)][0])


def test_seeded_restores_the_cpu_streams_and_leaves_cuda_alone(monkeypatch):
    def touched(*args, **kwargs):  # torch.manual_seed reseeds every CUDA generator (and never restores them)
        raise AssertionError("seeded() touched a CUDA generator")

    monkeypatch.setattr(torch.cuda, "manual_seed_all", touched)
    monkeypatch.setattr(torch.cuda, "manual_seed", touched)
    torch.default_generator.manual_seed(1), np.random.seed(1), random.seed(1)
    expected = torch.rand(2), np.random.rand(2), random.random()
    torch.default_generator.manual_seed(1), np.random.seed(1), random.seed(1)
    with pytest.raises(KeyError), seeded(9):  # restored on an exception too
        inside = torch.rand(2), np.random.rand(2), random.random()
        raise KeyError
    assert torch.equal(torch.rand(2), expected[0]) and np.array_equal(np.random.rand(2), expected[1])
    assert random.random() == expected[2]
    with seeded(9):
        again = torch.rand(2), np.random.rand(2), random.random()
    assert torch.equal(inside[0], again[0]) and np.array_equal(inside[1], again[1]) and inside[2] == again[2]


def test_unreadable_images_are_skipped_with_a_warning_and_counted(tmp_path, write_image_folder):
    write_image_folder(tmp_path, classes=1, per_class=2)
    (tmp_path / "class_0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    dataset = SafeImageFolder(tmp_path, transform=lambda image: torch.zeros(1))
    with pytest.warns(UserWarning, match="broken.png"):
        batch = [dataset[i] for i in range(len(dataset))]
    images, targets, skipped = collate_skip(batch)
    assert (images.shape[0], skipped) == (2, 1)


def test_topk_correct_counts_by_hand():
    logits = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4], [0.2, 0.3, 0.5]])
    targets = torch.tensor([1, 2, 0])
    # row 0: target is the top class; row 1: target is 2nd; row 2: target is 3rd (last)
    assert topk_correct(logits, targets, ks=(1, 2, 5)).tolist() == [1.0, 2.0, 3.0]


def test_a_bench_cap_above_a_split_takes_the_whole_split():
    from simpool.data.datasets import BenchImages

    # the recipes' one cap of 10,000 serves the 5,000-image val split: all of it, not an error
    assert len(BenchImages("val", None, num_images=10000, image_size=16)) == 5000
    assert len(BenchImages("val", None, num_images=7, image_size=16)) == 7
