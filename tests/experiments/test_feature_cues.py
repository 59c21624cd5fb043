"""``docs/examples/feature_cues.py``: what a backbone's features tell apart (the class or the background photo), by
the library's k-NN one query at a time, with a bootstrap interval, on a tiny ViT and a few bench images."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

import simpool
from simpool.data.bench import BACKGROUNDS, BenchConfig, _crop, background_bank, normalize_images
from simpool.evaluate.features import pre_logits
from simpool.evaluate.knn import knn_classify
from simpool.models import save_checkpoint
from tests.experiments.conftest import needs_fmnist

CUES = runpy.run_path(str(Path(__file__).parents[2] / "docs" / "examples" / "feature_cues.py"))
TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2)


def test_per_query_hits_average_to_the_librarys_knn_top1():
    generator = torch.Generator().manual_seed(0)
    bank, query = torch.randn(60, 8, generator=generator), torch.randn(25, 8, generator=generator)
    bank_labels, labels = (
        torch.randint(0, 4, (60,), generator=generator),
        torch.randint(0, 4, (25,), generator=generator),
    )
    hits = CUES["knn_hits"](bank, bank_labels, query, labels)
    assert hits.shape == (25,) and set(np.unique(hits)) <= {0.0, 1.0}
    assert hits.mean() * 100 == pytest.approx(knn_classify(bank, bank_labels, query, labels, k=20)["top1"])


def test_the_interval_of_hand_made_hits():
    interval = CUES["top1_interval"]
    assert interval(np.ones(50)) == {"top1": 100.0, "low": 100.0, "high": 100.0}
    half = interval(np.tile([0.0, 1.0], 200))  # 400 queries, half right: the interval is about +- 4.9 points
    assert half["top1"] == 50.0 and 44.0 < half["low"] < 47.0 and 53.0 < half["high"] < 56.0


def test_features_are_the_pooled_cls_token_and_the_patch_mean():
    torch.manual_seed(0)
    model = simpool.create_model("vit_tiny_patch16_224", pool="default", num_classes=0, **TINY).eval()
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    out = CUES["features"](model, images, batch_size=2)  # two batches
    with torch.no_grad():
        batch = normalize_images(images)
        tokens = model.forward_features(batch)  # (3, 1 + 16, 32)
        torch.testing.assert_close(out["cls"], pre_logits(model, batch))
        torch.testing.assert_close(out["patch_mean"], tokens[:, 1:].mean(1))


@needs_fmnist
def test_the_photo_label_is_the_background_rendered_behind_the_object():
    config = BenchConfig(image_size=32, seed=1)
    data = CUES["bench_images"]("test", "mixed_rand", 6, config)
    from simpool.data.bench import SimPoolBench

    bench = SimPoolBench("test", "mixed_rand", config, num_images=6)
    bank = background_bank(32)
    for i in range(6):
        image, mask, _ = bench.render(i)
        photo = int(data["photo"][i])
        assert 0 <= photo < len(BACKGROUNDS)
        expected = _crop(bank, photo, bench.params["crop_mixed"][i], bool(bench.params["crop_flip"][i]), 32)
        np.testing.assert_array_equal(image[~mask], expected[~mask])  # every pixel off the object: that photo's
        assert torch.equal(data["images"][i], torch.from_numpy(image).permute(2, 0, 1))


@needs_fmnist
def test_the_script_writes_each_backbones_answers_with_the_random_floor(tmp_path, capsys):
    torch.manual_seed(5)
    model = simpool.create_model("vit_tiny_patch16_224", pool="default", num_classes=3, **TINY)
    save_checkpoint(model, tmp_path / "a.safetensors")
    kwargs = [f"{k}={v}" for k, v in TINY.items()]
    out = tmp_path / "cues.json"
    args = ["--model", "vit_tiny_patch16_224", "--model-kwargs", *kwargs, "--random", "2", "--num-images", "30"]
    assert CUES["main"]([*args, "--backbone", f"a={tmp_path / 'a.safetensors'}", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["chance"] == {"class": 10.0, "photo": 100.0 / len(BACKGROUNDS)}
    assert record["bench"] == {"seed": 1, "image_size": 32, "num_images": 30}
    assert [(row["name"], row.get("seed")) for row in record["backbones"]] == [
        ("random", 0),
        ("random", 1),
        ("a", None),
    ]
    for row in record["backbones"]:
        for feature in ("cls", "patch_mean"):
            assert set(row[feature]) == {"class_mixed_rand", "photo_mixed_rand", "class_only_fg"}
            for score in row[feature].values():
                assert score["low"] <= score["top1"] <= score["high"]
                assert score["top1"] * 30 / 100 == pytest.approx(round(score["top1"] * 30 / 100))  # a count of 30
    assert record["backbones"][0]["cls"] != record["backbones"][1]["cls"]  # two random seeds, two backbones
    assert "machine" in record and record["command"].startswith("python ")
    with pytest.raises(SystemExit):  # nothing to ask
        CUES["main"](["--model", "vit_tiny_patch16_224", "--out", str(out)])
    assert "give --backbone" in capsys.readouterr().err


def test_a_persons_mistake_is_one_line_before_any_work(tmp_path, capsys):
    base = ["--model", "vit_tiny_patch16_224", "--out", str(tmp_path / "cues.json")]
    for args, message in (
        (["--random", "1", "--num-images", "5"], "--num-images must be at least k = 20"),
        (["--backbone", "a=missing.safetensors"], "no such checkpoint file: missing.safetensors"),
        (["--backbone", "nameless"], "'nameless': give NAME=CHECKPOINT"),
    ):
        with pytest.raises(SystemExit) as exit_:
            CUES["main"]([*base, *args])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "cues.json").exists()


@needs_fmnist
def test_a_checkpoint_of_another_model_is_one_line(tmp_path, capsys):
    model = simpool.create_model("vit_tiny_patch16_224", pool="default", num_classes=0, **{**TINY, "embed_dim": 64})
    save_checkpoint(model, tmp_path / "wide.safetensors")
    args = ["--model", "vit_tiny_patch16_224", "--model-kwargs", *(f"{k}={v}" for k, v in TINY.items())]
    with pytest.raises(SystemExit) as exit_:
        CUES["main"](
            [*args, "--backbone", f"w={tmp_path / 'wide.safetensors'}", "--num-images", "20", "--out", "x.json"]
        )
    assert exit_.value.code == 2 and "wide.safetensors" in capsys.readouterr().err
