"""``simpool probe``'s figures, drawn from its computed results: probe.png always, attention.png with maps, each
column titled with its scores."""

from __future__ import annotations

import numpy as np
from PIL import Image

from simpool.visualize import probe
from simpool.visualize.probe import probe_figures, score_title

HEADS = [
    {"head": "linear", "gflops": 0.0, "test_top1": 50.0, "MaxBoxAccV2": 30.0, "PxAP": 20.25},
    {"head": "simpool", "gflops": 2e-5, "test_top1": 75.0, "MaxBoxAccV2": 45.5, "PxAP": 33.0},
]
RESULT = {"heads": HEADS, "baselines": {"centre": {"MaxBoxAccV2": 43.3, "PxAP": 25.0}, "box_prior": {}}}


def test_probe_png_alone_without_attention_maps(tmp_path):
    assert probe_figures({"heads": HEADS}, [], {}, tmp_path) == {"figure": str(tmp_path / "probe.png")}
    assert Image.open(tmp_path / "probe.png").format == "PNG" and not (tmp_path / "attention.png").exists()


def test_attention_png_has_a_column_per_head_and_baseline_titled_with_its_scores(tmp_path, monkeypatch):
    pictures = [np.full((32, 32, 3), 120, np.uint8)] * 3
    rng = np.random.default_rng(0)
    maps = {name: rng.random((3, 4, 4)) for name in ("linear", "simpool", "centre", "box_prior")}
    paths = probe_figures(RESULT, pictures, maps, tmp_path)
    assert paths == {"figure": str(tmp_path / "probe.png"), "attention_figure": str(tmp_path / "attention.png")}
    with_baselines = Image.open(tmp_path / "attention.png").size
    probe_figures(RESULT, pictures, {k: maps[k] for k in ("linear", "simpool")}, tmp_path)
    assert Image.open(tmp_path / "attention.png").size[0] < 0.7 * with_baselines[0]  # 3 columns of 5
    drawn = {}
    monkeypatch.setattr(probe, "attention_figure", lambda *args: drawn.update(args=args) or args[2])
    probe_figures(RESULT, pictures, maps, tmp_path)
    assert drawn["args"][:3] == (pictures, maps, tmp_path / "attention.png")
    assert drawn["args"][3] == {
        "linear": "linear\nMaxBoxAccV2 30.0\nPxAP 20.2",
        "simpool": "simpool\nMaxBoxAccV2 45.5\nPxAP 33.0",
        "centre": "centre\nMaxBoxAccV2 43.3\nPxAP 25.0",
        "box_prior": "box_prior",
    }


def test_titles_carry_the_scores():
    assert score_title("simpool", HEADS[1]) == "simpool\nMaxBoxAccV2 45.5\nPxAP 33.0"
    assert score_title("centre", RESULT["baselines"]["centre"]) == "centre\nMaxBoxAccV2 43.3\nPxAP 25.0"
    assert score_title("box_prior", {}) == "box_prior" and score_title("x", None) == "x"


def test_attention_grid_has_a_colour_bar_and_each_pictures_ground_truth_box():
    import matplotlib.pyplot as plt

    pictures = [np.full((32, 32, 3), 120, np.uint8)] * 2
    maps = {"simpool": np.random.default_rng(0).random((2, 4, 4)), "gap": np.full((2, 4, 4), 1 / 16)}
    boxes = [np.array([[4, 6, 20, 30]]), np.array([[0, 0, 8, 8], [10, 10, 32, 32]])]
    figure = probe.draw_attention_grid(pictures, maps, boxes=boxes)
    try:
        *cells, bar = figure.axes
        assert len(cells) == 2 * 3  # 2 rows of image | simpool | gap, then the colour bar
        assert [label.get_text() for label in bar.get_yticklabels()] == ["map min", "uniform map", "map max"]
        for index, axis in enumerate(cells):
            drawn = [(patch.get_xy(), patch.get_width(), patch.get_height()) for patch in axis.patches]
            # pixel (i, j) covers [j - 0.5, j + 0.5]: the box (x0, y0, x1, y1) starts at (x0 - 0.5, y0 - 0.5)
            expected = [((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0) for x0, y0, x1, y1 in boxes[index // 3]]
            assert drawn == expected
    finally:
        plt.close(figure)
