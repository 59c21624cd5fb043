"""``simpool probe-predict``: a head saved by simpool probe (simpool/train/probe/saved.py) on its backbone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from simpool.cli.main import main
from simpool.data.transforms import build_transforms
from simpool.models import create_model, save_checkpoint
from simpool.train.config import from_dict
from simpool.train.probe.config import ProbeConfig
from simpool.train.probe.grid import Entry, ProbeHead
from simpool.train.probe.run import frozen_backbone
from simpool.train.probe.saved import head_config, load_head, save_head
from tests.conftest import TINY_VIT

CLASSES = ["cat", "dog", "eel"]


def _probe_config(tmp_path) -> ProbeConfig:
    """The config of a probe run on a tiny ViT whose images are not read with the data defaults."""
    torch.manual_seed(0)
    backbone = create_model("vit_tiny_patch16_224", pool="default", num_classes=0, **TINY_VIT)
    checkpoint = save_checkpoint(backbone, tmp_path / "backbone.safetensors")
    model = {"name": "vit_tiny_patch16_224", "kwargs": dict(TINY_VIT), "checkpoint": str(checkpoint)}
    data = {"img_size": 32, "crop_pct": 0.5, "interpolation": "bilinear", "mean": [0.5] * 3, "std": [0.25] * 3}
    return from_dict(ProbeConfig, {"model": model, "data": data})


def _saved_head(tmp_path, name: str, zero: bool = True) -> str:
    """A head file as simpool probe writes it; with ``zero`` its logits are the bias whatever the image:
    probabilities softmax(0, 1, 2)."""
    config = _probe_config(tmp_path)
    torch.manual_seed(1)
    head = ProbeHead(name, 32, len(CLASSES), num_prefix=1).eval()
    with torch.no_grad():
        head.fc.weight.mul_(0 if zero else 100)
        head.fc.bias.copy_(torch.tensor([0.0, 1.0, 2.0]))
    saved = head_config(config, head, Entry(name, 0.1), CLASSES)
    return str(save_head(tmp_path / "heads" / f"{name}.safetensors", head, saved))


def _images(tmp_path) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for index in range(2):
        path = tmp_path / f"image{index}.png"
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_predictions_and_the_heads_attention(tmp_path, capsys):
    head, images = _saved_head(tmp_path, "simpool"), _images(tmp_path)
    out = tmp_path / "predictions.png"
    assert main(["probe-predict", head, *images, "--top-k", "2", "--out", str(out)]) == 0
    p = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0).tolist()  # 0.090, 0.245, 0.665
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [f"{image}: eel {p[2]:.3f}, dog {p[1]:.3f}" for image in images]
    assert lines[2] == f"attention of simpool -> {out}"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_folder_of_images_and_mistakes_in_one_line(tmp_path, capsys):
    head, _ = _saved_head(tmp_path, "linear"), _images(tmp_path)
    assert main(["probe-predict", head, str(tmp_path), "--top-k", "1"]) == 0  # the folder's two PNGs
    assert [line.split(": ")[1] for line in capsys.readouterr().out.splitlines()] == ["eel 0.665"] * 2
    assert main(["probe-predict", head, str(tmp_path), "--out", str(tmp_path / "a.png")]) == 2
    assert "the linear head has no attention to draw" in capsys.readouterr().err
    assert main(["probe-predict", head, str(tmp_path / "missing.png")]) == 2
    assert "no image or folder at" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--top-k", "0"], ["--out", "x.jpg"]])
def test_bad_options_are_refused_before_any_work(tmp_path, capsys, bad):
    assert main(["probe-predict", str(tmp_path / "nohead.safetensors"), "x.png", *bad]) == 2
    assert bad[0] in capsys.readouterr().err


def test_predictions_and_maps_are_the_probes_own(tmp_path, capsys, monkeypatch):
    """A trained (nonzero) head: its predictions and drawn maps are those of the probe's own backbone
    (frozen_backbone) on the probe's own test transform (crop_pct, interpolation, normalisation of the run)."""
    head_path, images = _saved_head(tmp_path, "simpool", zero=False), _images(tmp_path)
    drawn = {}
    monkeypatch.setattr(
        "simpool.visualize.probe.attention_figure", lambda pictures, maps, out: drawn.update(maps) or out
    )
    assert main(["probe-predict", head_path, *images, "--top-k", "3", "--out", str(tmp_path / "p.png")]) == 0
    printed = [line.split(": ")[1] for line in capsys.readouterr().out.splitlines()[:2]]
    config = _probe_config(tmp_path)
    head, _ = load_head(head_path)
    backbone = frozen_backbone(config, torch.device("cpu"))
    _, transform = build_transforms(config.data)  # what the probe's test split is read with
    x = torch.stack([transform(Image.open(path).convert("RGB")) for path in images])  # (2, 3, 32, 32)
    with torch.no_grad():
        tokens = backbone(x)  # (2, T, C)
        p = head(tokens).softmax(-1)  # (2, 3)
        maps = head.attention(tokens).reshape(2, *backbone.grid).numpy()  # (2, h, w)
    expected = [", ".join(f"{CLASSES[i]} {row[i]:.3f}" for i in row.argsort(descending=True).tolist()) for row in p]
    assert printed == expected and len(set(printed)) == 2  # the images give different predictions
    np.testing.assert_allclose(drawn["simpool"], maps, rtol=1e-5, atol=1e-7)


def test_an_image_folder_split_is_read_through_its_class_folders(tmp_path, capsys):
    head = _saved_head(tmp_path, "linear")
    split = tmp_path / "test"
    for name in ("cat", "dog"):
        (split / name).mkdir(parents=True)
        _images(split / name)
    assert main(["probe-predict", head, str(split), "--top-k", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[0] for line in lines] == [
        str(split / c / f"image{i}.png") for c in ("cat", "dog") for i in (0, 1)
    ]
