"""``board.png`` of ``simpool board``: accuracy against attention quality, one point per head and backbone."""

from __future__ import annotations

import os
from pathlib import Path

from .probe import save_figure


def board_figure(points: list[dict], path: str | os.PathLike, levels: dict[str, float] | None = None) -> Path:
    """Test top-1 against MaxBoxAccV2, a marker per backbone and each point labelled with its head
    (:func:`simpool.experiments.board.figure_points`), and per backbone a dashed line at the strongest map that
    ignores the image (``levels``: :func:`simpool.experiments.board.baseline_levels`); written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4.5))
    backbones = list(dict.fromkeys(point["backbone"] for point in points))
    for index, backbone in enumerate(backbones):
        mine = [point for point in points if point["backbone"] == backbone]
        axes.scatter([p["x"] for p in mine], [p["y"] for p in mine], s=30, marker="os^Dv<>p"[index % 8], label=backbone)
        for point in mine:
            axes.annotate(point["label"], (point["x"], point["y"]), textcoords="offset points", xytext=(4, 4))
    for index, (backbone, level) in enumerate((levels or {}).items()):
        axes.axvline(level, color=f"C{backbones.index(backbone) if backbone in backbones else index}", linestyle="--")
    axes.set_xlabel("attention quality: MaxBoxAccV2 (%); dashed: the strongest map that ignores the image")
    axes.set_ylabel("test top-1 (%)")
    axes.set_title("probe board: accuracy vs attention quality" + ("" if points else " (no head with attention)"))
    axes.grid(alpha=0.3)
    if backbones:
        axes.legend(fontsize="small")
    try:
        return save_figure(figure, path)
    finally:
        plt.close(figure)
