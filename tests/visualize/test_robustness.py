"""``robustness.png``: each head's and the k-NN row's top-1 per test set as grouped bars, the BG-gap in the legend."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from PIL import Image

from simpool.train.probe.report import result_rows
from simpool.visualize.robustness import draw_robustness, robustness_figure

NAMES = ["test", "mixed_same", "mixed_rand"]


def _row(head: str, top1: list[float], **extra) -> dict:
    test_sets = {name: {"top1": value, "top5": 100.0} for name, value in zip(NAMES, top1, strict=True)}
    return {"head": head, "test_sets": test_sets, **extra}


RESULT = {
    "test_sets": [{"name": n, "count": 12} for n in NAMES],
    "heads": [
        _row("linear", [50.0, 60.0, 40.0], bg_gap=20.0),
        _row("ep", [55.0, 58.0, 50.0], label="ep[num_queries=4]", bg_gap=8.0),
    ],
    "knn": _row("knn", [30.0, 35.0, 25.0], label="knn (k=20)", bg_gap=10.0),
}


def test_bars_are_each_rows_top1_per_test_set_with_its_bg_gap_in_the_legend():
    figure = draw_robustness(NAMES, result_rows(RESULT))
    try:
        axes = figure.axes[0]
        labels = [text.get_text() for text in axes.get_legend().get_texts()]
        assert labels == ["linear (BG-gap +20.0)", "ep[num_queries=4] (BG-gap +8.0)", "knn (k=20) (BG-gap +10.0)"]
        heights = [bar.get_height() for bar in axes.patches]  # row by row, a bar per test set
        assert heights == [50.0, 60.0, 40.0, 55.0, 58.0, 50.0, 30.0, 35.0, 25.0]
        assert [tick.get_text() for tick in axes.get_xticklabels()] == NAMES
        centres = [bar.get_x() + bar.get_width() / 2 for bar in axes.patches]
        assert centres[1] - centres[0] == pytest.approx(1.0) and centres[3] - centres[0] == pytest.approx(0.8 / 3)
    finally:
        plt.close(figure)


def test_the_figure_is_written_as_a_png(tmp_path):
    path = robustness_figure(NAMES, result_rows(RESULT), tmp_path / "robustness.png")
    assert Image.open(path).format == "PNG"
