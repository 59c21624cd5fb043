"""The figures of ``simpool probe``, drawn from its computed results (:mod:`simpool.train.probe.report`): accuracy
against cost (efficient-probing's plot) and each head's attention."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..utils import atomic_write_bytes
from .overlay import overlay, to_rgb


def _save(figure, path: str | os.PathLike) -> Path:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())


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
        return _save(figure, path)
    finally:
        plt.close(figure)


def score_title(name: str, scores: dict | None) -> str:
    """A column's title: its name, and its MaxBoxAccV2 and PxAP when it has them."""
    parts = [f"{key} {scores[key]:.1f}" for key in ("MaxBoxAccV2", "PxAP") if scores and key in scores]
    return "\n".join([name, *parts])


def attention_figure(
    images: list[np.ndarray],
    maps: dict[str, np.ndarray],
    path: str | os.PathLike,
    titles: dict[str, str] | None = None,
) -> Path:
    """A grid: one row per image, the image then each column of ``maps`` (name -> ``(rows, h, w)``) over it, titled
    ``titles[name]`` (else the name); written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = titles or {}
    columns = 1 + len(maps)
    figure, axes = plt.subplots(len(images), columns, figsize=(1.6 * columns, 1.6 * len(images)), squeeze=False)
    for row, image in enumerate(images):
        axes[row, 0].imshow(to_rgb(image))
        for column, (name, head_maps) in enumerate(maps.items(), start=1):
            attention = np.asarray(head_maps[row], dtype=np.float64)
            if np.ptp(attention) <= 1e-6 * max(np.abs(attention).max(), 1e-12):
                attention = np.zeros_like(attention)  # uniform up to rounding (GAP): shown flat, not as noise
            axes[row, column].imshow(overlay(image, attention))
            if row == 0:
                axes[row, column].set_title(titles.get(name, name), fontsize=7)
        if row == 0:
            axes[row, 0].set_title("image", fontsize=7)
        for axis in axes[row]:
            axis.axis("off")
    try:
        return _save(figure, path)
    finally:
        plt.close(figure)


def probe_figures(
    result: dict, pictures: list[np.ndarray], maps: dict[str, np.ndarray], folder: str | os.PathLike
) -> dict[str, str]:
    """``probe.png`` from each head's row of ``result["heads"]`` (``test_top1``, ``gflops``) and, when there are
    ``maps`` (name -> ``(rows, h, w)`` over ``pictures``: the heads', then baselines'), ``attention.png``, each
    column titled with its scores (a head's row, or ``result["baselines"][name]``), in ``folder``; returns their
    paths as ``{"figure", "attention_figure"}``."""
    folder = Path(folder)
    heads = result["heads"]
    paths = {"figure": str(accuracy_figure(heads, folder / "probe.png"))}
    if maps:
        scores = {**result.get("baselines", {}), **{head["head"]: head for head in heads}}
        titles = {name: score_title(name, scores.get(name)) for name in maps}
        paths["attention_figure"] = str(attention_figure(pictures, maps, folder / "attention.png", titles))
    return paths


__all__ = ["accuracy_figure", "attention_figure", "probe_figures", "score_title"]
