"""The attention monitor: wsolevaluation metadata read exactly, maps handed to MaxBoxAccV2 in its contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import simpool.evaluate.localization as localization
from simpool.train.config import load_config
from simpool.train.supervised.config import SupervisedConfig
from simpool.train.supervised.monitor import SCORE_SIZE, AttentionMonitor, read_wsol_metadata
from simpool.train.supervised.recipe import train
from tests.train.conftest import overrides


def write_wsol(root: Path) -> Path:
    """Two images of different sizes; the first has two boxes (two instances)."""
    (root / "images" / "val").mkdir(parents=True)
    Image.new("RGB", (40, 20)).save(root / "images" / "val" / "a.png")
    Image.new("RGB", (10, 30)).save(root / "images" / "val" / "b.png")
    meta = root / "meta"
    meta.mkdir()
    (meta / "image_ids.txt").write_text("val/a.png\nval/b.png\n")
    (meta / "class_labels.txt").write_text("val/a.png,0\nval/b.png,1\n")
    (meta / "image_sizes.txt").write_text("val/a.png,40,20\nval/b.png,10,30\n")
    (meta / "localization.txt").write_text("val/a.png,1,2,10,12\nval/a.png,20,0,39,19\nval/b.png,0,5,9,25\n")
    return root


def test_wsol_metadata_is_read_in_file_order(tmp_path):
    ids, boxes, sizes = read_wsol_metadata(write_wsol(tmp_path) / "meta")
    assert ids == ["val/a.png", "val/b.png"]
    assert boxes["val/a.png"].tolist() == [[1, 2, 10, 12], [20, 0, 39, 19]]
    assert sizes == {"val/a.png": (40, 20), "val/b.png": (10, 30)}


def test_monitor_gives_224_maps_and_original_boxes_to_the_metric(tmp_path, tiny_vit):
    root = write_wsol(tmp_path)
    seen = {}

    def metric(maps, boxes, sizes):
        seen.update(maps=maps, boxes=boxes, sizes=sizes)
        return {"MaxBoxAccV2": 0.0}

    monitor = AttentionMonitor(
        "wsol", 32, (0.5,) * 3, (0.5,) * 3, metadata=str(root / "meta"), images=str(root / "images"), metric=metric
    )
    model = tiny_vit(num_classes=2)
    monitor(model, device=model.head.weight.device)
    assert seen["maps"].shape == (2, SCORE_SIZE, SCORE_SIZE)
    assert [b.tolist() for b in seen["boxes"]] == [[[1, 2, 10, 12], [20, 0, 39, 19]], [[0, 5, 9, 25]]]
    assert seen["sizes"] == [(40, 20), (10, 30)]
    # SimPool's attention a is a softmax over the 4x4 grid: positive, and its upsampled mean stays 1/16
    assert (seen["maps"] > 0).all() and np.allclose(seen["maps"].mean(axis=(1, 2)), 1 / 16, rtol=0.05)


def test_training_logs_the_monitor_beside_accuracy(tiny_data, tmp_path, monkeypatch):
    calls = []

    def metric(maps, boxes, sizes):  # stands in for wsolevaluation's MaxBoxAccV2
        calls.append(len(maps))
        return {"MaxBoxAccV2": 12.5, "BoxAcc@50": 20.0, "threshold@50": 0.3}

    monkeypatch.setattr(localization, "max_box_acc_v2", metric)
    config = load_config(
        SupervisedConfig,
        None,
        overrides(
            tiny_data, tmp_path / "runs", train__epochs=2, train__batch_size=16, monitor__every=2, monitor__max_images=6
        ),
    )
    result = train(config)
    assert calls == [6]  # every 2 epochs: once, on the first 6 bench test images
    assert (result["MaxBoxAccV2"], result["BoxAcc@50"]) == (12.5, 20.0) and "threshold@50" not in result


def test_monitor_runs_the_real_metric_on_the_bench(tiny_vit):
    monitor = AttentionMonitor("bench", 32, (0.5,) * 3, (0.5,) * 3, max_images=4)
    model = tiny_vit(num_classes=10)
    result = monitor(model, device=model.head.weight.device)
    # the same maps, boxes and sizes, captured and scored here by wsolevaluation's metric
    seen = {}
    capture = AttentionMonitor(
        "bench", 32, (0.5,) * 3, (0.5,) * 3, max_images=4, metric=lambda *inputs: seen.update(inputs=inputs) or {}
    )
    capture(model, device=model.head.weight.device)
    maps, boxes, sizes = seen["inputs"]
    assert maps.shape == (4, SCORE_SIZE, SCORE_SIZE) and len(boxes) == len(sizes) == 4
    assert result == pytest.approx(localization.max_box_acc_v2(maps, boxes, sizes))
