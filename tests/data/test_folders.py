"""Evaluation folders: an unreadable image is skipped with a warning naming it and counted, never a stop."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from simpool.data.folders import UnreadableImageError, collate_readable, image_folder, load_rgb
from simpool.evaluate.features import data_loader, eval_transform, extract_features
from simpool.evaluate.knn import evaluate_knn
from simpool.train.probe.linear import linear_probe

torch.set_num_threads(1)


def _truncate(path):
    """Cut an image file short: PIL then raises ``OSError: image file is truncated`` on decoding."""
    path.write_bytes(path.read_bytes()[:100])
    return path


@pytest.fixture
def folder_with_a_broken_image(tmp_path, write_image_folder):
    for split in ("train", "val"):
        write_image_folder(tmp_path / split, classes=2, per_class=3, size=32)
    broken = _truncate(tmp_path / "val" / "class_1" / "001.png")
    return tmp_path, broken


def test_load_rgb_names_an_unreadable_file(tmp_path, write_image_folder):
    broken = _truncate(write_image_folder(tmp_path, classes=1, per_class=1) / "class_0" / "000.png")
    with pytest.raises(UnreadableImageError, match=f"unreadable image {broken}: OSError"):
        load_rgb(broken)
    with pytest.raises(FileNotFoundError):
        load_rgb(tmp_path / "missing.png")


def test_the_folder_skips_the_image_with_a_warning_naming_it(folder_with_a_broken_image):
    root, broken = folder_with_a_broken_image
    dataset = image_folder(root / "val", eval_transform(32, 32))
    index = [path for path, _ in dataset.samples].index(str(broken))
    with pytest.warns(UserWarning, match=f"skipping unreadable image {broken}"):
        assert dataset[index] is None
    images, labels = collate_readable([dataset[0], None, dataset[1]])
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [0, 0]
    images, labels = collate_readable([None, None])  # a batch of unreadable images only: empty, to skip
    assert images.numel() == 0 and labels.shape == (0,)


@pytest.mark.parametrize("batch_size", [1, 4])  # 1: a batch holding only the broken image
def test_features_skip_and_count_unreadable_images(folder_with_a_broken_image, tiny_vit, batch_size):
    # before: OSError "image file is truncated" from the loader, the file not named, the evaluation lost
    root, broken = folder_with_a_broken_image
    dataset = image_folder(root / "val", eval_transform(32, 32))
    with pytest.warns(UserWarning) as record:
        features, labels = extract_features(tiny_vit(), data_loader(dataset, batch_size), progress=False)
    assert features.shape == (5, 32) and labels.tolist() == [0, 0, 0, 1, 1]
    messages = [str(w.message) for w in record]
    assert any(str(broken) in m for m in messages) and "features: skipped 1 unreadable image(s) of 6" in messages


def test_knn_and_the_linear_probe_run_past_an_unreadable_image(folder_with_a_broken_image, tiny_vit):
    root, broken = folder_with_a_broken_image
    _truncate(root / "train" / "class_0" / "002.png")
    model = tiny_vit()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = evaluate_knn(model, root, ks=(1,), resize=32, img_size=32, batch_size=2, progress=False)
        probe = linear_probe(model, root, lrs=(0.1,), epochs=1, img_size=32, resize=32, batch_size=1, progress=False)
        # k = 1 by hand: each of the 5 readable validation images takes the label of the most cosine-similar of the
        # 5 readable training images
        (train, train_labels), (val, val_labels) = (
            extract_features(model, data_loader(image_folder(root / split, eval_transform(32, 32)), 2), progress=False)
            for split in ("train", "val")
        )
    assert len(train) == len(val) == 5
    nearest = (F.normalize(val, dim=1) @ F.normalize(train, dim=1).T).argmax(dim=1)  # (5, 5) -> (5,)
    assert result[1]["top1"] == pytest.approx(100.0 * (train_labels[nearest] == val_labels).sum().item() / 5)
    # the probe is scored on the 5 readable validation images too: its accuracy is a whole number of fifths
    (top1,) = probe["best"]["top1_per_epoch"]
    assert top1 / 20 == pytest.approx(round(top1 / 20))
    assert any(str(broken) in str(w.message) for w in record)
