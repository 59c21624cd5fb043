"""``board.png``: a panel per backbone, the fixed-map level dashed, and head labels that do not overlap."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.text import Text

from simpool.visualize.board import board_figure, draw_board


def _point(backbone: str, label: str, x: float, y: float) -> dict:
    return {"backbone": backbone, "label": label, "x": x, "y": y, "xerr": 1.0, "yerr": 0.5}


# five heads scoring alike on one backbone: their labels would sit on one another where they were drawn
POINTS = [_point("sup", f"head{k}", 30.0 + 0.1 * k, 60.0 + 0.05 * k) for k in range(5)] + [
    _point("dino", "linear", 12.0, 45.0)
]


def test_a_panel_per_backbone_with_its_dashed_level():
    figure = draw_board(POINTS, {"sup": 15.0, "dino": 20.0})
    try:
        assert [axes.get_title() for axes in figure.axes] == ["sup", "dino"]
        dashed = [line.get_xdata()[0] for axes in figure.axes for line in axes.lines if line.get_linestyle() == "--"]
        assert dashed == [15.0, 20.0]
    finally:
        plt.close(figure)


def test_labels_of_clustered_heads_do_not_overlap_and_point_back():
    figure = draw_board(POINTS)
    try:
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        texts = [text for text in figure.axes[0].texts]
        assert sorted(text.get_text() for text in texts) == [f"head{k}" for k in range(5)]
        boxes = sorted(
            (Text.get_window_extent(text, renderer) for text in texts),  # the text, not its line
            key=lambda box: box.y0,
        )
        for below, above in zip(boxes, boxes[1:], strict=False):
            assert above.y0 >= below.y1 - 1.0  # a pixel of antialiasing at most
        assert sum(text.arrow_patch is not None for text in texts) >= 4  # moved labels keep a line to their point
        assert [text.get_text() for text in figure.axes[1].texts] == ["linear"]
        assert figure.axes[1].texts[0].arrow_patch is None  # alone: not moved
    finally:
        plt.close(figure)


def test_board_figure_writes_a_png(tmp_path):
    path = board_figure(POINTS, tmp_path / "board.png", {"sup": 15.0})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
