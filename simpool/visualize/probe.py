"""The figures of ``simpool probe``, drawn from its computed results (:mod:`simpool.train.probe.report`): accuracy
against cost (efficient-probing's plot) and each head's attention."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import figures
from .overlay import add_colorbar, overlay, to_rgb


def save_figure(figure, path: str | os.PathLike) -> Path:
    return figures.save_figure(figure, path, bbox_inches="tight")


def accuracy_figure(heads: list[dict], path: str | os.PathLike) -> Path:
    """Test top-1 against GFLOPs, each head a labelled point (its selected lr); written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 4))
    for head in heads:
        axes.scatter(head["gflops"], head["test_top1"], s=30)
        axes.annotate(head["head"], (head["gflops"], head["test_top1"]), textcoords="offset points", xytext=(4, 4))
    axes.set_xscale("symlog", linthresh=1e-6)
    axes.set_xlabel("head GFLOPs per image")
    axes.set_ylabel("test top-1 (%)")
    axes.set_title("attentive probing: accuracy vs cost")
    axes.grid(alpha=0.3)
    try:
        return save_figure(figure, path)
    finally:
        plt.close(figure)


def score_title(name: str, scores: dict | None) -> str:
    """A column's title: its name, and its MaxBoxAccV2 and PxAP when it has them."""
    parts = [f"{key} {scores[key]:.1f}" for key in ("MaxBoxAccV2", "PxAP") if scores and scores.get(key) is not None]
    return "\n".join([name, *parts])


def attention_figure(
    images: list[np.ndarray],
    maps: dict[str, np.ndarray],
    path: str | os.PathLike,
    titles: dict[str, str] | None = None,
    boxes: list[np.ndarray] | None = None,
) -> Path:
    """A grid: one row per image, the image then each column of ``maps`` (name -> ``(rows, h, w)``) over it, titled
    ``titles[name]`` (else the name), each picture with its ground-truth ``boxes[row]`` (``(k, 4)`` x0, y0, x1, y1
    in the picture's pixels, right and bottom exclusive) when given, and a colour bar; written atomically."""
    import matplotlib.pyplot as plt

    figure = draw_attention_grid(images, maps, titles, boxes)
    try:
        return save_figure(figure, path)
    finally:
        plt.close(figure)


def draw_attention_grid(
    images: list[np.ndarray],
    maps: dict[str, np.ndarray],
    titles: dict[str, str] | None = None,
    boxes: list[np.ndarray] | None = None,
):
    """The matplotlib figure of :func:`attention_figure` (a uniform map drawn uniform: :func:`overlay`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = titles or {}
    columns = 1 + len(maps)
    figure, axes = plt.subplots(len(images), columns, figsize=(1.6 * columns + 0.8, 1.6 * len(images)), squeeze=False)
    for row, image in enumerate(images):
        axes[row, 0].imshow(to_rgb(image))
        for column, (name, head_maps) in enumerate(maps.items(), start=1):
            axes[row, column].imshow(overlay(image, np.asarray(head_maps[row], dtype=np.float64)))
            if row == 0:
                axes[row, column].set_title(titles.get(name, name), fontsize=7)
        if row == 0:
            axes[row, 0].set_title("image", fontsize=7)
        for axis in axes[row]:
            for box in [] if boxes is None else np.asarray(boxes[row]).reshape(-1, 4):
                draw_box(axis, box)
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_frame_on(False)
    add_colorbar(figure, axes)
    return figure


def draw_box(axis, box, color: str = "lime") -> None:
    """A ground-truth box ``(x0, y0, x1, y1)`` in pixels (right and bottom exclusive) on an ``imshow`` axis, where
    pixel ``(i, j)`` covers ``[j - 0.5, j + 0.5]``."""
    import matplotlib.patches as patches

    x0, y0, x1, y1 = (float(v) for v in box)
    axis.add_patch(patches.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=color, lw=1.2))


def probe_figures(
    result: dict,
    pictures: list[np.ndarray],
    maps: dict[str, np.ndarray],
    folder: str | os.PathLike,
    boxes: list[np.ndarray] | None = None,
) -> dict[str, str]:
    """``probe.png`` from each head's row of ``result["heads"]`` (``test_top1``, ``gflops``) and, when there are
    ``maps`` (name -> ``(rows, h, w)`` over ``pictures``: the heads', then baselines'), ``attention.png``, each
    column titled with its scores (a head's row, or ``result["baselines"][name]``) and the pictures' ground-truth
    ``boxes`` drawn when given (``(k, 4)`` per picture, its pixels), in ``folder``; returns their paths as
    ``{"figure", "attention_figure"}``."""
    folder = Path(folder)
    heads = result["heads"]
    paths = {"figure": str(accuracy_figure(heads, folder / "probe.png"))}
    if maps:
        scores = {**result.get("baselines", {}), **{head["head"]: head for head in heads}}
        titles = {name: score_title(name, scores.get(name)) for name in maps}
        figure = attention_figure(pictures, maps, folder / "attention.png", titles, boxes)
        paths["attention_figure"] = str(figure)
    return paths


__all__ = [
    "accuracy_figure",
    "attention_figure",
    "draw_attention_grid",
    "draw_box",
    "probe_figures",
    "save_figure",
    "score_title",
]
