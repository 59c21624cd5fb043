"""``simpool attention`` end to end on a few small images with tiny ViT checkpoints."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from simpool.cli import main
from simpool.models import save_checkpoint
from simpool.visualize.figures import grid_size
from simpool.visualize.report import parse_checkpoints
from tests.conftest import TINY_VIT

# the shared tiny ViT with two blocks; the image size is inferred from the checkpoint
ARCH = ["--model-kwargs", *(f"{key}={value}" for key, value in {**TINY_VIT, "depth": 2}.items() if key != "img_size")]


@pytest.fixture
def workspace(tmp_path, tiny_vit):
    torch.manual_seed(0)
    for pool in ("default", "simpool"):
        model = tiny_vit(pool, num_classes=3, depth=2)
        save_checkpoint(model, tmp_path / f"{pool}.safetensors")
    rng = np.random.default_rng(0)
    (tmp_path / "images" / "sub").mkdir(parents=True)
    for name, (w, h) in {"a.png": (40, 30), "b.jpg": (64, 64), "sub/c.png": (50, 80)}.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path / "images" / name)
    (tmp_path / "boxes.json").write_text(json.dumps({"a.png": [[5, 5, 30, 25]], "sub/c.png": [[0, 0, 49, 79]]}))
    return tmp_path


def test_two_checkpoints_with_boxes(workspace, capsys):
    out = workspace / "out"
    argv = ["attention", "--model", "vit_tiny_patch16_224", *ARCH, "--img-size", "64"]
    argv += [
        "--checkpoint",
        f"cls={workspace / 'default.safetensors'}",
        "--checkpoint",
        f"sp={workspace / 'simpool.safetensors'}",
    ]
    argv += [str(workspace / "images"), "--out", str(out), "--boxes", str(workspace / "boxes.json"), "--display", "48"]
    assert main(argv) == 0
    assert "gallery.html" in capsys.readouterr().out
    scores = json.loads((out / "scores.json").read_text())
    names = [record["name"] for record in scores["images"]]
    assert names == ["0000_a", "0001_b", "0002_c"]  # sorted, folders searched recursively
    for record in scores["images"]:
        assert set(record["models"]) == {"cls", "sp"}
        cls, sp = record["models"]["cls"], record["models"]["sp"]
        assert cls["main_map"] == "cls" and sp["main_map"] == "pool"
        assert 0 < cls["confidence"] <= 1 and 0 <= sp["predicted"] < 3
        assert 0 < sp["mask_area"] <= 1
        assert ("iou" in sp) == (record["name"] != "0001_b")  # b.jpg has no ground truth
    # an image covered entirely by its ground-truth box: IoU = predicted box area / image area
    c = scores["images"][2]["models"]["sp"]
    x0, y0, x1, y1 = c["box"]
    assert c["iou"] == pytest.approx((x1 - x0 + 1) * (y1 - y0 + 1) / (50 * 80))
    # every map at the 64-pixel input: an 8x8 grid of 8-pixel patches (position embeddings resampled)
    maps = np.load(out / "0000_a" / "cls" / "maps.npz")
    assert sorted(maps.files) == ["cls", "cls_block1", "cls_block2", "cls_head1", "cls_head2"]
    assert all(maps[key].shape == (8, 8) for key in maps.files)
    assert np.load(out / "0000_a" / "sp" / "maps.npz")["pool"].shape == (8, 8)
    for picture in ("cls.png", "cls_head2.png", "cls_block1.png", "mask.png", "box.png"):
        assert Image.open(out / "0002_c" / "cls" / picture).size == (48, 48)
    # grids: input | cls | sp, three rows; Figure C7: input | block 1 | block 2 | sp
    for kind in ("attention", "mask", "box"):
        assert Image.open(out / f"grid_{kind}_00.png").size == grid_size(3, 3, 48, 4, 28)
    assert Image.open(out / "blocks_cls_00.png").size == grid_size(3, 4, 48, 4, 28)
    page = (out / "gallery.html").read_text()
    assert page.count("<tr data-") == 3 and page.count("data:image/png;base64,") == 3 * (1 + 2 * 3)


def test_gamma_sweep_labels_and_pages(workspace):
    out = workspace / "sweep"
    checkpoint = str(workspace / "simpool.safetensors")
    argv = ["attention", "--model", "vit_tiny_patch16_224", *ARCH, "--grid-rows", "2"]
    argv += [
        "--checkpoint",
        checkpoint,
        "--checkpoint",
        checkpoint,
        "--gammas",
        "none,1.25",
        str(workspace / "images" / "a.png"),
    ]
    argv += [str(workspace / "images" / "sub"), "--out", str(out), "--display", "32"]
    assert main(argv) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert list(scores["images"][0]["models"]) == ["no γ", "γ = 1.25"]
    assert Image.open(out / "grid_attention_00.png").size == grid_size(2, 3, 32, 4, 28)
    assert not (out / "grid_attention_01.png").exists()


def test_bad_arguments():
    with pytest.raises(ValueError, match="--gammas"):
        parse_checkpoints(["a.safetensors", "b.safetensors"], "auto", ["1"])
    with pytest.raises(ValueError, match="differ"):
        parse_checkpoints(["x/a.safetensors", "y/a.safetensors"], "auto", None)
    assert parse_checkpoints(["A=w.safetensors"], "auto", None)[0].label == "A"


def test_unreadable_images_are_skipped_and_named(workspace, capsys):
    images = workspace / "images"
    (images / "broken.png").write_bytes(b"not a png")
    out = workspace / "skipped"
    argv = ["attention", "--model", "vit_tiny_patch16_224", *ARCH, "--img-size", "64"]
    argv += ["--checkpoint", str(workspace / "simpool.safetensors"), str(images), "--out", str(out), "--display", "32"]
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\) of 4: unreadable image .*broken\.png"):
        assert main(argv) == 0
    names = [record["name"] for record in json.loads((out / "scores.json").read_text())["images"]]
    assert names == ["0000_a", "0001_b", "0002_c"]  # the broken file is neither drawn nor numbered
    # nothing readable at all: one line naming the file, exit 2
    only = workspace / "only_broken"
    only.mkdir()
    (only / "x.png").write_bytes(b"")
    argv[argv.index(str(images))] = str(only)
    assert main(argv) == 2
    assert "no readable image among 1 file(s): unreadable image" in capsys.readouterr().err
