"""``board.png`` of ``simpool board``: accuracy against attention quality, one panel per backbone, one point per
head."""

from __future__ import annotations

import os
from pathlib import Path

from .probe import save_figure


def board_figure(points: list[dict], path: str | os.PathLike, levels: dict[str, float] | None = None) -> Path:
    """Test top-1 against MaxBoxAccV2 (:func:`simpool.experiments.board.figure_points`): a panel per backbone,
    sharing both axes, each point a head with its label and, over several runs, its sample std as error bars;
    in each panel a dashed line at the strongest map that ignores the image (``levels``:
    :func:`simpool.experiments.board.baseline_levels`). Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
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
        for point in mine:
            axes.annotate(
                point["label"], (point["x"], point["y"]), textcoords="offset points", xytext=(3, 3), fontsize=7
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
    try:
        return save_figure(figure, path)
    finally:
        plt.close(figure)
