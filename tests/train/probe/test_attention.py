"""Where the probe's attention scores read their objects: the splits' metadata, the test masks, the box prior."""

from __future__ import annotations

import shutil

import numpy as np

from simpool.data.wsol import read_wsol_metadata
from simpool.train.probe.attention import find_metadata, object_masks, training_prior

from .conftest import config_of, rendered_masks


def test_metadata_beside_the_data_or_beside_the_given_folder(probe_bench, tmp_path):
    config = config_of(probe_bench / "dataset", tmp_path / "run")
    assert find_metadata(config) == probe_bench / "metadata" / "test"
    assert find_metadata(config, "train") == probe_bench / "metadata" / "train"
    assert find_metadata(config, "val") is None  # not exported
    given = config_of(tmp_path, tmp_path / "run", probe={"metadata": str(probe_bench / "metadata" / "test")})
    assert find_metadata(given) == probe_bench / "metadata" / "test"
    assert find_metadata(given, "train") == probe_bench / "metadata" / "train"  # the folder beside it


def test_test_masks_are_the_bench_masks(probe_bench):
    folder = probe_bench / "metadata" / "test"
    metadata = read_wsol_metadata(folder)
    ids = metadata.image_ids[:5]
    masks = object_masks(metadata, folder, probe_bench / "dataset", ids)
    np.testing.assert_array_equal(masks, rendered_masks(probe_bench / "dataset", ids))  # (5, 64, 64) 0/1
    metadata.masks.pop(ids[2])
    assert object_masks(metadata, folder, probe_bench / "dataset", ids) is None  # an image without a mask


def test_box_prior_from_the_training_masks_else_boxes_else_the_test_split(probe_bench, tmp_path):
    config = config_of(probe_bench / "dataset", tmp_path / "run")
    test_folder = probe_bench / "metadata" / "test"
    test = read_wsol_metadata(test_folder)
    train_ids = read_wsol_metadata(probe_bench / "metadata" / "train").image_ids
    prior, source = training_prior(config, test, test_folder, (64, 64))
    assert source == {"split": "train", "metadata": str(probe_bench / "metadata" / "train"), "from": "masks"}
    np.testing.assert_array_equal(prior, rendered_masks(probe_bench / "dataset", train_ids).mean(0))
    # no masks.txt: the training boxes, filled (64-px images: at 64x64 the boxes stay as they are)
    boxes_only = tmp_path / "boxes_only"
    shutil.copytree(probe_bench / "metadata", boxes_only / "metadata")
    (boxes_only / "metadata" / "train" / "masks.txt").unlink()
    (boxes_only / "dataset").mkdir()
    config = config_of(boxes_only / "dataset", tmp_path / "run")
    prior, source = training_prior(config, test, test_folder, (64, 64))
    filled = np.zeros((len(train_ids), 64, 64))
    train = read_wsol_metadata(boxes_only / "metadata" / "train")
    for canvas, image_id in zip(filled, train_ids, strict=True):
        x0, y0, x1, y1 = train.boxes[image_id][0]
        canvas[y0:y1, x0:x1] = 1.0
    assert source["from"] == "boxes" and source["split"] == "train"
    np.testing.assert_allclose(prior, filled.mean(0), rtol=1e-6)  # box_prior's mean is float32
    # no training metadata at all: the test split's own objects
    config = config_of(probe_bench / "dataset", tmp_path / "run")
    config.data.train_split = "unexported"
    prior, source = training_prior(config, test, test_folder, (64, 64))
    assert source == {"split": "test", "metadata": str(test_folder), "from": "masks"}
    np.testing.assert_array_equal(prior, rendered_masks(probe_bench / "dataset", test.image_ids).mean(0))


def test_each_process_maps_its_block_and_scores_its_share(probe_bench, tiny_vit):
    """Under torchrun no process works alone: the maps of 2 processes' blocks, and their shares of the scoring,
    together give the single process's (here each process's part before the gather)."""
    import torch

    from simpool.train.distributed import DistInfo
    from simpool.train.probe.attention import collect_maps, my_scores, shared_scores
    from simpool.train.probe.grid import build_grid

    from .conftest import tiny_backbone

    config = config_of(probe_bench / "dataset", probe_bench / "unused")
    grid = build_grid(tiny_backbone(tiny_vit), ["linear", "simpool"], [1e-3], 10, 32)
    ids = read_wsol_metadata(probe_bench / "metadata" / "test").image_ids[:7]
    one = DistInfo(0, 1, 0, torch.device("cpu"))
    ranks = [DistInfo(rank, 2, rank, torch.device("cpu")) for rank in (0, 1)]
    whole = collect_maps(config, grid, {"simpool": 1}, ids, one)["simpool"]  # (7, 4, 4)
    parts = [collect_maps(config, grid, {"simpool": 1}, ids, info)["simpool"] for info in ranks]
    assert [len(p) for p in parts] == [4, 3]  # contiguous blocks, not the whole set on rank 0
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-6)
    maps = {"a": whole, "b": whole * 2, "c": whole + 1}
    scored = []
    shares = [my_scores(maps, info, lambda m, r=info.rank: scored.append(r) or float(m.sum())) for info in ranks]
    assert sorted(scored) == [0, 0, 1]  # a, c on rank 0 and b on rank 1: each name scored once
    assert {**shares[0], **shares[1]} == shared_scores(maps, one, lambda m: float(m.sum()))
