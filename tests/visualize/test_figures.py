"""figure_grid: the layout of Figures 1/C2 (input | model A | model B), exact sizes and cell positions."""

import numpy as np
import pytest
from PIL import Image

from simpool.visualize import figure_grid, gamma_label
from simpool.visualize.figures import cell_origin, grid_size

COLORS = [[(255, 0, 0), (0, 255, 0), (0, 0, 255)], [(255, 255, 0), (0, 255, 255), (255, 0, 255)]]


def solid(color, h=13, w=17):
    return np.broadcast_to(np.array(color, dtype=np.uint8), (h, w, 3))


def test_layout_size_and_cells(tmp_path):
    rows = [[solid(c) for c in row] for row in COLORS]
    cell, pad, header = 20, 4, 28
    figure = figure_grid(
        rows, ["input", "model A", "model B"], tmp_path / "grid.png", cell=cell, pad=pad, header=header
    )
    # width = 3 cells + 4 pads = 76; height = header + 2 cells + 3 pads = 28 + 40 + 12 = 80
    assert grid_size(2, 3, cell, pad, header) == (76, 80)
    assert figure.shape == (80, 76, 3) and figure.dtype == np.uint8
    for r, row in enumerate(COLORS):
        for c, color in enumerate(row):
            x, y = cell_origin(r, c, cell, pad, header)
            assert (x, y) == (pad + c * (cell + pad), header + pad + r * (cell + pad))
            np.testing.assert_array_equal(figure[y : y + cell, x : x + cell], solid(color, cell, cell))
            assert (figure[y : y + cell, x - 1] == 255).all()  # a white gap left of each cell
    assert (figure[:header] < 128).any()  # the column titles are drawn
    saved = np.asarray(Image.open(tmp_path / "grid.png").convert("RGB"))
    np.testing.assert_array_equal(saved, figure)


def test_no_labels_no_header():
    figure = figure_grid([[solid((0, 0, 0))]], cell=10, pad=2)
    assert figure.shape == (14, 14, 3)
    assert (figure[2:12, 2:12] == 0).all() and (figure[:2] == 255).all()


@pytest.mark.parametrize(
    "rows, labels", [([], None), ([[solid((0, 0, 0))], []], None), ([[solid((0, 0, 0))]], ["a", "b"])]
)
def test_invalid_grids(rows, labels):
    with pytest.raises(ValueError):
        figure_grid(rows, labels)


def test_gamma_labels():
    assert [gamma_label(g) for g in (None, 0.5, 1.25, 2.0)] == ["no γ", "γ = 0.5", "γ = 1.25", "γ = 2"]
