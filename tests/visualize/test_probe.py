"""``simpool probe``'s figures, drawn from its computed results: probe.png always, attention.png with maps."""

from __future__ import annotations

import numpy as np
from PIL import Image

from simpool.visualize.probe import probe_figures

HEADS = [
    {"head": "linear", "gflops": 0.0, "test_top1": 50.0},
    {"head": "simpool", "gflops": 2e-5, "test_top1": 75.0},
]


def test_probe_png_alone_without_attention_maps(tmp_path):
    assert probe_figures(HEADS, [], {}, tmp_path) == {"figure": str(tmp_path / "probe.png")}
    assert Image.open(tmp_path / "probe.png").format == "PNG" and not (tmp_path / "attention.png").exists()


def test_attention_png_has_a_row_per_picture_and_a_column_per_head(tmp_path):
    pictures = [np.full((32, 32, 3), 120, np.uint8)] * 3
    maps = {"linear": np.ones((3, 4, 4)), "simpool": np.random.default_rng(0).random((3, 4, 4))}
    paths = probe_figures(HEADS, pictures, maps, tmp_path)
    assert paths == {"figure": str(tmp_path / "probe.png"), "attention_figure": str(tmp_path / "attention.png")}
    width, height = Image.open(tmp_path / "attention.png").size
    assert abs(width / height - 3 / 3) < 0.2  # 3 columns (image, 2 heads) x 3 rows of square panels
    probe_figures(HEADS, pictures[:1], maps, tmp_path)
    width, height = Image.open(tmp_path / "attention.png").size
    assert abs(width / height - 3 / 1) < 0.5  # one row
