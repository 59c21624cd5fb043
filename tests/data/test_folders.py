"""Evaluation folders: an unreadable image is skipped with a warning naming it and counted, never a stop."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

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


@pytest.mark.parametrize(
    "pixels, expected",
    [
        # 16-bit: full white is 65535 = 257 * 255, so 257 * v reads as v (before: convert("RGB") clipped at 255: white)
        (np.array([[0, 257 * 100, 65535]], dtype=np.uint16), [0, 100, 255]),
        # float in [0, 1] (a float TIFF): 0.2 reads as 0.2 * 255 = 51 (before: truncated to 0 or 1: black)
        (np.array([[0.0, 0.2, 1.0]], dtype=np.float32), [0, 51, 255]),
    ],
)
def test_wide_images_are_read_with_their_real_range(tmp_path, pixels, expected):
    from simpool.data.datasets import SafeImageFolder

    path = tmp_path / "class_0" / ("image.png" if pixels.dtype == np.uint16 else "image.tif")
    path.parent.mkdir()
    Image.fromarray(pixels).save(path)
    assert Image.open(path).mode in ("I;16", "F")
    rgb = np.asarray(load_rgb(path))  # evaluation, probe and attention images
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 3, 3)
    assert rgb[0, :, 0].tolist() == rgb[0, :, 1].tolist() == rgb[0, :, 2].tolist() == expected
    image, _ = SafeImageFolder(tmp_path)[0]  # training images
    assert np.asarray(image).tolist() == rgb.tolist()


@pytest.mark.parametrize(
    "pixels, reason",
    [
        (np.array([[0.0, 2.5]], dtype=np.float32), "float pixels span [0, 2.5], expected [0, 1]"),
        (
            np.array([[0, 70000]], dtype=np.int32),
            "32-bit integer pixels have no range to read them with; save it as 8- or 16-bit, or as float in [0, 1]",
        ),
    ],
)
def test_a_wide_image_without_a_known_range_is_refused_in_one_line(tmp_path, pixels, reason):
    path = tmp_path / "image.tif"
    Image.fromarray(pixels).save(path)
    with pytest.raises(UnreadableImageError) as error:
        load_rgb(path)
    assert str(error.value) == f"unreadable image {path}: {reason}"
