"""DINO's weighted k-NN: hand-made cases with exact answers, and parity with a plain loop."""

import json
import math
import os

import numpy as np
import pytest
import torch

from simpool.cli import main
from simpool.data.folders import image_folder
from simpool.evaluate.features import eval_transform, extract_features
from simpool.evaluate.knn import knn_classify, knn_classify_many, knn_predict


def unit(degrees):
    r = torch.tensor(degrees, dtype=torch.float64).deg2rad()
    return torch.stack([r.cos(), r.sin()], 1).float()


def test_nearest_neighbour_and_normalisation():
    # class 0 along 0 degrees, class 1 along 90; tests at 10 and 80 degrees -> 0 and 1
    train, labels = unit([0, 90]), torch.tensor([0, 1])
    test = unit([10, 80]) * torch.tensor([[3.0], [0.2]])  # lengths do not matter: L2-normalised inside
    assert knn_classify(train * 7, labels, test, torch.tensor([0, 1]), k=1) == {"top1": 100.0, "top5": 100.0}
    assert knn_classify(train, labels, test, torch.tensor([1, 0]), k=1) == {"top1": 0.0, "top5": 0.0}  # top5 = min(5,k)


def test_temperature_weights_beat_majority():
    # one class-0 neighbour at cosine 1, two class-1 neighbours at cosine 0; k = 3
    # T = 0.07: exp(1/0.07) = 1.6e6 > 2 exp(0) = 2 -> class 0;  T = 10: exp(0.1) = 1.105 < 2 -> class 1
    train, labels = unit([0, 90, -90]), torch.tensor([0, 1, 1])
    test, target = unit([0]), torch.tensor([0])
    assert knn_classify(train, labels, test, target, k=3, temperature=0.07)["top1"] == 100.0
    assert knn_classify(train, labels, test, target, k=3, temperature=10.0)["top1"] == 0.0
    assert knn_classify(train, labels, test, target, k=3, temperature=10.0)["top5"] == 100.0  # second of 2 classes


def test_tied_votes_rank_lower_class_first():
    # (1, 1) is exactly equally similar to (1, 0) and (0, 1): equal votes, class 0 ranks first
    train, labels, test = torch.eye(2), torch.tensor([0, 1]), torch.ones(1, 2)
    assert knn_classify(train, labels, test, torch.tensor([0]), k=2)["top1"] == 100.0
    assert knn_classify(train.flip(0), labels, test, torch.tensor([0]), k=2)["top1"] == 100.0  # order-free
    result = knn_classify(train, labels, test, torch.tensor([1]), k=2)
    assert result == {"top1": 0.0, "top5": 100.0}


def test_k_larger_than_a_class():
    # class 0 has one training point (cos 1 to the test point); class 1 has three at cos 0.8, 0.6 and 0 (k=4)
    # votes: class 0 = exp(1/T), class 1 = exp(.8/T) + exp(.6/T) + exp(0/T); with T = 0.5 class 1 wins
    angles = [0, math.degrees(math.acos(0.8)), math.degrees(math.acos(0.6)), 90]
    train, labels, test = unit(angles), torch.tensor([0, 1, 1, 1]), unit([0])
    class0, class1 = math.exp(2.0), math.exp(1.6) + math.exp(1.2) + 1.0  # 7.39 < 9.27
    assert class1 > class0
    assert knn_classify(train, labels, test, torch.tensor([1]), k=4, temperature=0.5)["top1"] == 100.0
    assert knn_classify(train, labels, test, torch.tensor([0]), k=1, temperature=0.5)["top1"] == 100.0
    with pytest.raises(ValueError, match="number of training features"):
        knn_classify(train, labels, test, torch.tensor([0]), k=5)


def reference_knn(train, train_y, test, test_y, k, T, classes):
    """DINO's knn_classifier written as a plain loop over test points (numpy, float64)."""
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    top1 = top5 = 0
    for x, y in zip(test, test_y, strict=True):
        similarity = train @ x
        nearest = np.argsort(-similarity, kind="stable")[:k]
        scores = np.zeros(classes)
        for i in nearest:
            scores[train_y[i]] += np.exp(similarity[i] / T)
        order = np.argsort(-scores, kind="stable")
        top1 += order[0] == y
        top5 += y in order[: min(5, k)]
    return 100.0 * top1 / len(test), 100.0 * top5 / len(test)


@pytest.mark.parametrize("k", [1, 10, 20])
def test_parity_with_plain_loop_and_chunking(k):
    rng = np.random.default_rng(k)
    train, test = rng.normal(size=(300, 16)), rng.normal(size=(57, 16))
    train_y, test_y = rng.integers(0, 12, 300), rng.integers(0, 12, 57)
    test[:5] = train[:5] + 0.01  # a few easy hits
    expected = reference_knn(train, train_y, test, test_y, k, 0.07, 12)
    args = [torch.tensor(a) for a in (train, train_y, test, test_y)]
    tiny_memory = knn_classify_many(*args, ks=(k, 3), temperature=0.07, num_classes=12, memory_bytes=4000)
    whole = knn_classify(*args, k=k, temperature=0.07, num_classes=12)
    assert (whole["top1"], whole["top5"]) == pytest.approx(expected)
    assert tiny_memory[k] == whole  # 3 test rows per chunk give the same answer


def test_predictions_are_the_hand_made_votes_and_give_the_top1():
    # the cases above: T decides between one close class-0 neighbour and two far class-1 ones; a tie goes to class 0
    train, labels = unit([0, 90, -90]), torch.tensor([0, 1, 1])
    assert knn_predict(train, labels, unit([0]), k=3, temperature=0.07).tolist() == [0]
    assert knn_predict(train, labels, unit([0]), k=3, temperature=10.0).tolist() == [1]
    assert knn_predict(torch.eye(2), torch.tensor([0, 1]), torch.ones(1, 2), k=2).tolist() == [0]
    rng = np.random.default_rng(3)
    train, test = torch.tensor(rng.normal(size=(300, 16))), torch.tensor(rng.normal(size=(57, 16)))
    train_y, test_y = torch.tensor(rng.integers(0, 12, 300)), torch.tensor(rng.integers(0, 12, 57))
    predicted = knn_predict(train, train_y, test, k=10, num_classes=12)
    assert predicted.shape == (57,) and predicted.dtype == torch.long
    top1 = knn_classify(train, train_y, test, test_y, k=10, num_classes=12)["top1"]
    assert 100.0 * (predicted == test_y).double().mean().item() == pytest.approx(top1)
    with pytest.raises(ValueError, match="k must be in"):
        knn_predict(train, train_y, test, k=301)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="same D"):
        knn_classify(torch.zeros(4, 3), torch.zeros(4), torch.zeros(2, 5), torch.zeros(2), k=1)
    with pytest.raises(ValueError, match="one label per feature"):
        knn_classify(torch.zeros(4, 3), torch.zeros(3), torch.zeros(2, 3), torch.zeros(2), k=1)


def test_cli_end_to_end_matches_function(tmp_path, capsys, write_image_folder, tiny_vit, tiny_vit_args):
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    write_image_folder(tmp_path / "data" / "train", per_class=4, size=40, colours=colours)
    write_image_folder(tmp_path / "data" / "val", per_class=2, size=40, colours=colours)
    argv = ["eval", "knn", "--data", str(tmp_path / "data"), "--model", "vit_tiny_patch16_224", "--model-kwargs"]
    argv += tiny_vit_args + [
        "--nb-knn",
        "1",
        "3",
        "--resize",
        "32",
        "--img-size",
        "32",
        "--workers",
        "0",
        "--device",
        "cpu",
    ]
    argv += ["--out", str(tmp_path / "knn.json"), "--no-progress", "--batch-size", "5"]
    torch.manual_seed(0)
    assert main(argv) == 0
    result = json.loads((tmp_path / "knn.json").read_text())
    assert "top1" in capsys.readouterr().out
    torch.manual_seed(0)  # the same random weights as the CLI built
    model = tiny_vit(num_classes=0)
    transform = eval_transform(32, 32)
    train = extract_features(
        model,
        [
            (
                torch.stack([x for x, _ in image_folder(tmp_path / "data/train", transform)]),
                torch.tensor([0] * 4 + [1] * 4 + [2] * 4),
            )
        ],
        progress=False,
    )
    val = extract_features(
        model,
        [
            (
                torch.stack([x for x, _ in image_folder(tmp_path / "data/val", transform)]),
                torch.tensor([0] * 2 + [1] * 2 + [2] * 2),
            )
        ],
        progress=False,
    )
    for k in (1, 3):
        assert result["results"][str(k)] == pytest.approx(knn_classify(*train, *val, k=k, num_classes=3))


@pytest.mark.slow
def test_cli_on_bench_imagefolder_export(tmp_path, bench_export, tiny_vit_args):
    """The SimPool bench's ImageFolder export (train/ and test/, 64x64 images) read end to end."""
    for split, count in (("train", 30), ("test", 10)):
        bench_export("imagefolder", split=split, num_images=count, root=tmp_path)
    argv = ["eval", "knn", "--data", str(tmp_path), "--val-split", "test", "--model", "vit_tiny_patch16_224"]
    argv += ["--model-kwargs", *tiny_vit_args, "--nb-knn", "1", "5", "--resize", "32", "--img-size", "32"]
    argv += ["--workers", "0"]
    assert main(argv + ["--device", "cpu", "--no-progress", "--out", str(tmp_path / "knn.json")]) == 0
    results = json.loads((tmp_path / "knn.json").read_text())["results"]
    assert results["1"]["top1"] == results["1"]["top5"]  # with k = 1, top-5 counts min(5, k) = 1 class


def test_k_beyond_the_training_images_is_refused_before_any_feature(tmp_path, capsys, write_image_folder, monkeypatch):
    import simpool.evaluate.knn as knn

    write_image_folder(tmp_path / "data" / "train", per_class=2, size=32)
    write_image_folder(tmp_path / "data" / "val", per_class=1, size=32)

    def no_features(*args, **kwargs):
        raise AssertionError("features extracted before k was checked")

    monkeypatch.setattr(knn, "extract_features", no_features)
    argv = ["eval", "knn", "--data", str(tmp_path / "data"), "--model", "resnet18", "--pool", "default"]
    argv += ["--nb-knn", "5", "20", "--img-size", "32", "--resize", "32", "--workers", "0", "--device", "cpu"]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"simpool eval: error: k must be in [1, 4] (the number of training images in {tmp_path / 'data' / 'train'}), "
        "got [5, 20]"
    )


def read_only(monkeypatch, folder):
    """``folder`` as a read-only mount would be, even for root (which a chmod does not stop)."""
    import simpool.cli.common as common

    access = os.access
    monkeypatch.setattr(common.os, "access", lambda p, mode: False if str(p) == str(folder) else access(p, mode))


@pytest.mark.parametrize(
    "command",
    [
        ["eval", "knn", "--out"],
        ["eval", "localization", "--metadata", "m", "--checkpoint", "c", "--out"],
        ["eval", "localization", "--metadata", "m", "--checkpoint", "c", "--save-scoremaps"],
        ["convert", "--checkpoint", "x.pth", "--out"],
    ],
)
def test_a_read_only_out_is_refused_before_any_work(tmp_path, capsys, monkeypatch, command):
    import simpool.cli.convert as convert
    import simpool.cli.evaluate as evaluate

    monkeypatch.setattr(evaluate, "model_from_args", lambda *a, **k: pytest.fail("model built before --out checked"))
    monkeypatch.setattr(convert, "convert", lambda *a, **k: pytest.fail("converted before --out checked"))
    read_only(monkeypatch, tmp_path / "ro")
    (tmp_path / "ro").mkdir()
    out = tmp_path / "ro" / "result"
    argv = [*command, str(out)] + (["--out", str(tmp_path / "r.json")] if "--out" not in command else [])
    if command[0] == "eval":
        argv += ["--data", str(tmp_path), "--model", "resnet18"]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.endswith(f"error: {command[-1]} {out}: {tmp_path / 'ro'} is not writable")
