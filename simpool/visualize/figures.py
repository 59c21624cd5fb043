"""Figure grids: input | model A | model B ... (paper Figures 1, C2-C9), and gamma sweeps (C5, C6)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..utils import atomic_write_bytes
from .overlay import to_rgb


def grid_size(num_rows: int, num_columns: int, cell: int, pad: int, header: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of a grid of R rows and C columns.

    ``width = C*cell + (C+1)*pad`` and ``height = header + R*cell + (R+1)*pad``.
    """
    return num_columns * cell + (num_columns + 1) * pad, header + num_rows * cell + (num_rows + 1) * pad


def cell_origin(row: int, column: int, cell: int, pad: int, header: int) -> tuple[int, int]:
    """``(x, y)`` of the top-left pixel of cell ``(row, column)``."""
    return pad + column * (cell + pad), header + pad + row * (cell + pad)


def figure_grid(
    rows: list[list],
    column_labels: list[str] | None = None,
    path: str | Path | None = None,
    cell: int = 224,
    pad: int = 4,
    header: int = 28,
) -> np.ndarray:
    """Compose pictures into a labelled grid, one row per image, one column per view.

    The paper's layout: ``input | model A | model B | ...`` (Figures 1, C2, C3, C8, C9),
    ``input | no gamma | gamma = 0.5 | ...`` (C5, C6), ``input | block 1 | ... | SimPool`` (C7).
    Each picture is resized to ``cell x cell`` pixels; cell ``(r, c)`` starts at
    :func:`cell_origin`, and the whole figure has :func:`grid_size` pixels, on a white background.

    Args:
        rows: ``rows[r][c]`` is an image ``(H, W)``, ``(H, W, 3)`` or ``(3, H, W)``, floats in [0, 1] or uint8.
        column_labels: one title per column, drawn in a header of ``header`` pixels (none: no header).
        path: where to write the PNG (atomically); ``None`` writes nothing.
        cell: side of a cell in pixels.
        pad: white space between and around cells.
        header: height of the title band.

    Returns:
        The figure, ``(height, width, 3)`` uint8.

    Raises:
        ValueError: no rows, rows of different lengths, or labels not matching the columns.
    """
    from PIL import Image, ImageDraw

    if not rows or not rows[0]:
        raise ValueError("figure_grid needs at least one row with one picture")
    num_columns = len(rows[0])
    if any(len(row) != num_columns for row in rows):
        raise ValueError(f"every row must have {num_columns} pictures, got {[len(row) for row in rows]}")
    if column_labels is not None and len(column_labels) != num_columns:
        raise ValueError(f"{len(column_labels)} column labels for {num_columns} columns")
    header = header if column_labels else 0
    width, height = grid_size(len(rows), num_columns, cell, pad, header)
    canvas = Image.new("RGB", (width, height), "white")
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            tile = Image.fromarray((to_rgb(picture) * 255).round().astype(np.uint8))
            canvas.paste(tile.resize((cell, cell), Image.Resampling.BILINEAR), cell_origin(r, c, cell, pad, header))
    if column_labels:
        draw = ImageDraw.Draw(canvas)
        for c, label in enumerate(column_labels):
            x, _ = cell_origin(0, c, cell, pad, header)
            draw.text((x + cell / 2, header / 2), label, fill="black", anchor="mm", font_size=max(8, header // 2))
    figure = np.asarray(canvas)  # (height, width, 3)
    if path is not None:
        buffer = io.BytesIO()
        canvas.save(buffer, format="PNG")
        atomic_write_bytes(path, buffer.getvalue())
    return figure


def gamma_label(gamma: float | None) -> str:
    """Column title of a gamma sweep: ``"no γ"`` for the plain average (f_{-1}), else ``"γ = 1.25"``."""
    return "no γ" if gamma is None else f"γ = {gamma:g}"


def save_figure(figure, path: str | Path, **savefig) -> Path:
    """Write a Matplotlib figure as PNG (120 dpi, plus any ``savefig`` options), atomically, and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, **savefig)
    plt.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())


def save_png(picture, path: str | Path) -> Path:
    """Write one picture as PNG, atomically."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray((to_rgb(picture) * 255).round().astype(np.uint8)).save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())
