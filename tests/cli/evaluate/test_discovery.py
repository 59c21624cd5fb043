"""``simpool eval discovery`` end to end on a VOC-layout folder made in tmp_path."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from simpool.cli import main
from simpool.data.voc import write_voc_annotation
from simpool.evaluate.discovery import corloc


def make_voc(root, sizes):
    voc = root / "VOCdevkit" / "VOC2007"
    rng = np.random.default_rng(0)
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    for index, (w, h) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(voc / "JPEGImages" / f"{index:06d}.jpg")
        write_voc_annotation(
            voc / "Annotations" / f"{index:06d}.xml", f"{index:06d}.jpg", (w, h), [[0, 0, w, h]], ["x"]
        )
    (voc / "ImageSets" / "Main" / "trainval.txt").write_text("".join(f"{i:06d}\n" for i in range(len(sizes))))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from simpool.models import create_model, save_checkpoint

    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    for pool in ("simpool", "default"):
        save_checkpoint(create_model("vit_tiny_patch16_224", pool=pool, num_classes=2), folder / f"{pool}.safetensors")
    return folder


@pytest.mark.slow  # a 224-px ViT-Tiny
@pytest.mark.parametrize(
    "method, pool, source",
    [
        ("lost", "simpool", "pool"),
        ("lost", "default", "cls"),
        ("dino_seg", "default", "cls_head"),
        ("dino_seg", "simpool", "pool"),
    ],
)
def test_voc_end_to_end(tmp_path, checkpoints, method, pool, source, capsys):
    # sizes not multiples of 16: padded to 80x96 and 48x64; the GT box is the whole image
    make_voc(tmp_path / "voc", [(90, 70), (50, 40)])
    argv = ["eval", "discovery", "--method", method, "--dataset", "voc07", "--data", str(tmp_path / "voc")]
    argv += ["--model", "vit_tiny_patch16_224", "--pool", pool, "--num-classes", "2", "--source", source]
    argv += ["--checkpoint", str(checkpoints / f"{pool}.safetensors"), "--out", str(tmp_path / "out")]
    assert main([*argv, "--device", "cpu", "--head", "2"]) == 0  # vit_tiny has 3 heads
    boxes = json.loads((tmp_path / "out" / "boxes.json").read_text())
    assert list(boxes) == ["000000.jpg", "000001.jpg"]
    for (w, h), box in zip([(90, 70), (50, 40)], boxes.values(), strict=True):
        x0, y0, x1, y1 = box
        assert x0 % 16 == 0 and y0 % 16 == 0 and 0 <= x0 < x1 and 0 <= y0 < y1
        if method == "lost":  # LOST clips to the unpadded image
            assert x1 <= w and y1 <= h
    result = json.loads((tmp_path / "out" / "corloc.json").read_text())
    # the GT box is the whole image: a box is correct when it covers at least half of it (IoU >= 0.5)
    sizes = [(90, 70), (50, 40)]
    by_hand = 100.0 * sum(iou(box, (0, 0, w, h)) >= 0.5 for (w, h), box in zip(sizes, boxes.values(), strict=True)) / 2
    assert result["images"] == 2 and result["CorLoc"] == pytest.approx(by_hand)
    assert result["CorLoc"] == pytest.approx(corloc(list(boxes.values()), [[[0, 0, w, h]] for w, h in sizes]))
    if (method, source) == ("dino_seg", "cls_head"):  # every head of the 3, the boxes' head 2 among them
        per_head = result["per_head_CorLoc"]
        assert len(per_head) == 3 and per_head[2] == result["CorLoc"] and "mean_heads_CorLoc" in result
        assert result["best_head_CorLoc"] == max(per_head) == per_head[result["best_head"]]
        assert f"best head {result['best_head']}: {max(per_head):.2f}" in capsys.readouterr().out
    else:
        assert "per_head_CorLoc" not in result


def iou(a, b) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes, pixel edges exclusive."""
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area
