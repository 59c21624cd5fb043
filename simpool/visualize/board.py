"""``board.png`` of ``simpool board``: accuracy against attention quality, one panel per backbone, one point per
head."""

from __future__ import annotations

import os
from pathlib import Path

from .labels import spread
from .probe import save_figure


def board_figure(points: list[dict], path: str | os.PathLike, levels: dict[str, float] | None = None) -> Path:
    """:func:`draw_board`, written atomically to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = draw_board(points, levels)
    try:
        return save_figure(figure, path)
    finally:
        plt.close(figure)


def draw_board(points: list[dict], levels: dict[str, float] | None = None):
    """Test top-1 against MaxBoxAccV2 (:func:`simpool.experiments.board.figure_points`): a panel per backbone,
    sharing both axes, each point a head with its label (:func:`label_points`) and, over several runs, its sample
    std as error bars; in each panel a dashed line at the strongest map that ignores the image (``levels``:
    :func:`simpool.experiments.board.baseline_levels`). Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    backbones = list(dict.fromkeys([point["backbone"] for point in points] + list(levels or {}))) or [""]
    figure, panels = plt.subplots(
        1, len(backbones), figsize=(4.2 * len(backbones) + 0.8, 4.5), sharex=True, sharey=True, squeeze=False
    )
    for index, (backbone, axes) in enumerate(zip(backbones, panels[0], strict=True)):
        mine = [point for point in points if point["backbone"] == backbone]
        axes.errorbar(
            [p["x"] for p in mine],
            [p["y"] for p in mine],
            xerr=[p["xerr"] for p in mine],
            yerr=[p["yerr"] for p in mine],
            fmt="o",
            markersize=4,
            color=f"C{index}",
            elinewidth=0.6,
            alpha=0.8,
        )
        if backbone in (levels or {}):
            axes.axvline(levels[backbone], color="grey", linestyle="--", linewidth=1)
        axes.set_title(backbone or "no head with attention", fontsize=9)
        axes.set_xlabel("MaxBoxAccV2 (%)")
        axes.grid(alpha=0.3)
    panels[0][0].set_ylabel("test top-1 (%)")
    figure.suptitle(
        "probe board: accuracy vs attention quality (dashed: the strongest map that ignores the image)", fontsize=10
    )
    figure.tight_layout()
    for backbone, axes in zip(backbones, panels[0], strict=True):  # after the layout: label in display units
        label_points(axes, [point for point in points if point["backbone"] == backbone])
    return figure


def label_points(axes, points: list[dict], fontsize: float = 7.0) -> None:
    """Each point's label to its right, moved up or down as little as keeps the labels of one panel a line apart
    and inside the panel (:func:`simpool.visualize.labels.spread`), with a thin line back to its point when it
    moved."""
    if not points:
        return
    pixels = axes.transData.transform([(point["x"], point["y"]) for point in points])  # (P, 2) display pixels
    per_point = 72.0 / axes.figure.dpi  # display pixels to typographic points
    wanted = [float(y) for y in pixels[:, 1]]
    gap = 1.2 * fontsize / per_point
    bottom, top = axes.get_window_extent().intervaly
    targets = spread(wanted, gap, lo=bottom + gap / 2, hi=top - gap / 2)
    for point, y, placed in zip(points, wanted, targets, strict=True):
        shift = (placed - y) * per_point
        axes.annotate(
            point["label"],
            (point["x"], point["y"]),
            textcoords="offset points",
            xytext=(6, shift),
            va="center",
            fontsize=fontsize,
            annotation_clip=False,
            arrowprops={"arrowstyle": "-", "linewidth": 0.4, "color": "grey"} if abs(shift) > 1 else None,
        )
