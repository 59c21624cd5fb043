"""Feature extraction: the pre-logits representation of any pool, in loader order."""

import argparse

import numpy as np
import pytest
import torch
from PIL import Image

from simpool.data.folders import ImageList, image_folder
from simpool.evaluate.features import (
    add_model_arguments,
    build_model,
    chunks,
    extract_features,
    format_table,
    parse_kwargs,
    pre_logits,
    rows_per_chunk,
)
from simpool.models import save_checkpoint


@pytest.mark.parametrize("pool", ["simpool", "default", "gap"])
def test_extract_features_is_forward_head_pre_logits_in_order(pool, tiny_vit):
    torch.manual_seed(0)
    model = tiny_vit(pool, num_classes=5).eval()
    images = torch.randn(7, 3, 32, 32)
    batches = [(images[i : i + 3], torch.arange(i, min(i + 3, 7))) for i in range(0, 7, 3)]
    features, labels = extract_features(model, batches, device="cpu", progress=False)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(images), pre_logits=True)
    assert features.shape == (7, model.num_features)
    torch.testing.assert_close(features, expected)
    assert labels.tolist() == list(range(7))  # loader order kept


def test_extract_features_rejects_empty_loader(tiny_vit):
    with pytest.raises(ValueError, match="no batches"):
        extract_features(tiny_vit(), [], progress=False)


def test_chunks_cover_range_and_budget():
    assert [(s.start, s.stop) for s in chunks(7, 3)] == [(0, 3), (3, 6), (6, 7)]
    assert rows_per_chunk(columns=1000, budget_bytes=8000) == 2  # 2 rows x 1000 float32 = 8000 bytes
    assert rows_per_chunk(columns=10**9, budget_bytes=8) == 1


def test_parse_kwargs_reads_yaml_scalars():
    assert parse_kwargs(["a=1", "b=0.5", "c=true", "d=x"]) == {"a": 1, "b": 0.5, "c": True, "d": "x"}
    with pytest.raises(ValueError, match="key=value"):
        parse_kwargs(["oops"])


def test_build_model_loads_classifier_checkpoint_into_feature_extractor(tmp_path, tiny_vit, tiny_vit_args):
    torch.manual_seed(0)
    trained = tiny_vit(num_classes=4)
    save_checkpoint(trained, tmp_path / "w.safetensors")
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    args = parser.parse_args(
        [
            "--model",
            "vit_tiny_patch16_224",
            "--model-kwargs",
            *tiny_vit_args,
            "--checkpoint",
            str(tmp_path / "w.safetensors"),
        ]
        + ["--device", "cpu"]
    )
    model = build_model(args)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(pre_logits(model, x), pre_logits(trained.eval(), x))
    # a classifier model built from a feature checkpoint misses only its head: allowed
    save_checkpoint(model, tmp_path / "f.safetensors")
    args.num_classes, args.checkpoint = 3, str(tmp_path / "f.safetensors")
    build_model(args)
    # a checkpoint of another architecture misses backbone weights: refused
    save_checkpoint({"unrelated": torch.zeros(1)}, tmp_path / "bad.safetensors")
    args.checkpoint = str(tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match="lacks model weights"):
        build_model(args)


def test_image_list_crops_boxes_and_image_folder_sorts_classes(tmp_path):
    image = np.zeros((10, 20, 3), np.uint8)
    image[2:5, 3:9] = 255
    Image.fromarray(image).save(tmp_path / "a.png")
    dataset = ImageList([(str(tmp_path / "a.png"), 4)], boxes=[(3, 2, 9, 5)])
    crop, label = dataset[0]
    assert label == 4 and crop.size == (6, 3)  # PIL crop: right/bottom exclusive
    assert np.asarray(crop).min() == 255  # exactly the white rectangle
    for name in ("b_cls", "a_cls"):
        (tmp_path / "folder" / name).mkdir(parents=True)
        Image.fromarray(image).save(tmp_path / "folder" / name / "x.png")
    folder = image_folder(tmp_path / "folder")
    assert folder.classes == ["a_cls", "b_cls"] and [y for _, y in folder.samples] == [0, 1]
    with pytest.raises(FileNotFoundError):
        image_folder(tmp_path / "missing")
    # numbered by another split's classes: a split lacking 'a_cls' keeps b_cls = 1
    renumbered = image_folder(tmp_path / "folder", classes=["a_cls", "b_cls", "c_cls"])
    assert [y for _, y in renumbered.samples] == [0, 1] and renumbered.targets == [0, 1]
    assert image_folder(tmp_path / "folder", classes=["z", "a_cls", "b_cls"]).targets == [1, 2]
    with pytest.raises(ValueError, match="not among"):
        image_folder(tmp_path / "folder", classes=["a_cls"])


def test_format_table():
    table = format_table([(10, 1.0, 2.5)], ("k", "top1", "top5")).splitlines()
    assert table[0].split() == ["k", "top1", "top5"] and table[2].split() == ["10", "1.00", "2.50"]
