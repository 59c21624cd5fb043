"""ImageNet-9 background robustness: mapping quirks, BG-gap, the layout, and the CLI on tiny folders."""

import json

import pytest
import torch
from torchvision import transforms

from simpool.cli import main
from simpool.data.in9 import class_labels, in9_classes, in9_dataset, in9_variations, load_in9_mapping
from simpool.evaluate.features import IMAGENET_MEAN, IMAGENET_STD
from simpool.evaluate.robustness import bg_gap, in9_accuracy, in9_predictions, variation_logits

MAPPING = torch.tensor([0, -1, 1, 1, -1])  # a 5-class "ImageNet": classes 1 and 4 are outside IN-9


def test_top1_over_all_classes_then_map():
    logits = torch.tensor([[1.0, 5.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 3.0, 1.0], [9.0, 0.0, 0.0, 0.0, 0.0]])
    # row 0: argmax is class 1 (outside IN-9) -> -1, although restricted to IN-9 classes it would give class 2 -> 1
    assert in9_predictions(logits, MAPPING).tolist() == [-1, 1, 0]
    labels = torch.tensor([1, 1, 0])
    assert in9_accuracy(logits, labels, MAPPING) == pytest.approx(200 / 3)  # the -1 counts as wrong
    assert in9_accuracy(logits[:, :2], torch.tensor([1, 0, 0])) == pytest.approx(100.0)  # a direct head: argmax
    with pytest.raises(ValueError, match="entries"):
        in9_predictions(torch.zeros(1, 6), MAPPING)


def test_bg_gap():
    assert bg_gap({"mixed_same": 80.5, "mixed_rand": 70.0, "original": 90.0}) == pytest.approx(10.5)
    with pytest.raises(ValueError, match="mixed_rand"):
        bg_gap({"mixed_same": 80.0})


def test_load_mapping(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({str(i): int(v) for i, v in enumerate(MAPPING)}))
    assert load_in9_mapping(tmp_path / "m.json").tolist() == MAPPING.tolist()
    (tmp_path / "bad.json").write_text(json.dumps({"0": 0, "2": 1}))
    with pytest.raises(ValueError, match="0..1"):
        load_in9_mapping(tmp_path / "bad.json")
    (tmp_path / "bad9.json").write_text(json.dumps({"0": 9}))
    with pytest.raises(ValueError, match="-1..8"):
        load_in9_mapping(tmp_path / "bad9.json")


@pytest.fixture
def write_in9(write_image_folder):
    """``write_in9(root)``: IN-9's ``<variation>/val/<NN_name>/<i>.JPEG`` layout of 3 classes of 2 noise images."""

    def write(root, variations=("mixed_rand", "mixed_same", "only_fg", "fg_mask"), classes=3, per_class=2):
        names = [f"{c:02d}_class {c}" for c in range(classes)]  # spaces, as in '02_wheeled vehicle'
        for seed, variation in enumerate(variations):
            write_image_folder(
                root / variation / "val",
                per_class=per_class,
                seed=seed,
                pattern="noise",
                class_names=names,
                suffix=".JPEG",
            )

    return write


def test_layout(tmp_path, write_in9):
    write_in9(tmp_path)
    assert in9_variations(tmp_path) == ["only_fg", "mixed_same", "mixed_rand"]  # paper order, fg_mask skipped
    dataset = in9_dataset(tmp_path, "only_fg")
    assert dataset.classes == ["00_class 0", "01_class 1", "02_class 2"] and len(dataset) == 6
    with pytest.raises(FileNotFoundError):
        in9_variations(tmp_path / "only_fg" / "val")
    # a variation without a class folder keeps the numbering of the others
    for image in (tmp_path / "only_fg/val/00_class 0").iterdir():
        image.unlink()
    (tmp_path / "only_fg/val/00_class 0").rmdir()
    classes = in9_classes(tmp_path)
    assert classes == ["00_class 0", "01_class 1", "02_class 2"]
    assert sorted(set(in9_dataset(tmp_path, "only_fg", classes=classes).targets)) == [1, 2]
    assert sorted(set(in9_dataset(tmp_path, "only_fg").targets)) == [1, 2]  # the NN_ prefix is the label
    assert class_labels(["b", "a", "c"]) == {"a": 0, "b": 1, "c": 2}  # no prefixes: sorted order
    with pytest.raises(ValueError, match="not among"):
        in9_dataset(tmp_path, "mixed_same", classes=classes[1:])


def test_cli_direct_head_and_mapping(tmp_path, write_in9, tiny_vit, tiny_vit_args, capsys):
    write_in9(tmp_path / "in9")
    base = ["eval", "robustness", "--data", str(tmp_path / "in9"), "--model", "vit_tiny_patch16_224"]
    base += ["--model-kwargs", *tiny_vit_args, "--workers", "0", "--device", "cpu", "--no-progress"]
    torch.manual_seed(0)
    assert main(base + ["--num-classes", "3", "--out", str(tmp_path / "direct.json")]) == 0
    result = json.loads((tmp_path / "direct.json").read_text())
    torch.manual_seed(0)  # the same weights: recompute one variation by hand
    model = tiny_vit(num_classes=3).eval()
    logits, labels = variation_logits(
        model,
        torch.utils.data.DataLoader(in9_dataset(tmp_path / "in9", "mixed_rand", transforms.ToTensor()), batch_size=4),
        IMAGENET_MEAN,
        IMAGENET_STD,
        progress=False,
    )
    assert result["accuracy"]["mixed_rand"] == pytest.approx(in9_accuracy(logits, labels))
    assert result["bg_gap"] == pytest.approx(result["accuracy"]["mixed_same"] - result["accuracy"]["mixed_rand"])
    # a 5-class model whose classes 1 and 4 are outside IN-9
    (tmp_path / "m.json").write_text(json.dumps({str(i): int(v) for i, v in enumerate([0, -1, 1, 2, -1])}))
    assert main(base + ["--mapping", str(tmp_path / "m.json"), "--variations", "only_fg"]) == 0
    capsys.readouterr()
    assert main(base + ["--num-classes", "2", "--variations", "only_fg"]) == 2  # one line, no traceback
    assert "--mapping" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_on_bench_in9_export(tmp_path, bench_export, tiny_vit_args):
    """The SimPool bench's IN-9 export (10 Fashion-MNIST classes, 64x64) read end to end by a 10-way model."""
    bench_export("in9", "all", num_images=12, root=tmp_path / "in9")
    argv = ["eval", "robustness", "--data", str(tmp_path / "in9"), "--model", "vit_tiny_patch16_224"]
    argv += [
        "--model-kwargs",
        *tiny_vit_args,
        "--img-size",
        "32",
        "--num-classes",
        "10",
        "--workers",
        "0",
        "--device",
        "cpu",
    ]
    assert main(argv + ["--no-progress", "--out", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert len(result["accuracy"]) == 8 and "bg_gap" in result
