"""``robustness.png`` of ``simpool probe`` with several test sets: each head's top-1 on every test set (the IN-9
variants on the bench), grouped by test set, its BG-gap (``mixed_same - mixed_rand``) in its legend entry; drawn
from the rows of a probe's ``results.json`` (:mod:`simpool.train.probe.report`), the k-NN row beside the heads."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .probe import save_figure


def legend_label(row: dict) -> str:
    """A row's name (its varied options in it) and its BG-gap when it has one."""
    label = row.get("label", row["head"])
    return f"{label} (BG-gap {row['bg_gap']:+.1f})" if "bg_gap" in row else label


def draw_robustness(names: list[str], rows: list[dict]):
    """The figure: for each test set named, a group of bars, each row's top-1 there (``row["test_sets"][name]``;
    the rows of a probe's ``results.json``: ``simpool.train.probe.report.result_rows``); the caller closes it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 0.8 / max(len(rows), 1)
    figure, axes = plt.subplots(figsize=(max(5.0, 1.1 * len(names) + 2), 4))
    positions = np.arange(len(names))
    for i, row in enumerate(rows):
        top1 = [row["test_sets"][name]["top1"] for name in names]
        axes.bar(positions + (i - (len(rows) - 1) / 2) * width, top1, width, label=legend_label(row))
    axes.set_xticks(positions, names, rotation=30, ha="right")
    axes.set_ylabel("top-1 (%)")
    axes.set_ylim(0, 100)
    axes.set_title("top-1 per test set (BG-gap = mixed_same - mixed_rand)")
    axes.legend(fontsize=7)
    axes.grid(axis="y", alpha=0.3)
    return figure


def robustness_figure(names: list[str], rows: list[dict], path: str | os.PathLike) -> Path:
    """:func:`draw_robustness` written to ``path`` (``robustness.png``) atomically."""
    import matplotlib.pyplot as plt

    figure = draw_robustness(names, rows)
    try:
        return save_figure(figure, path)
    finally:
        plt.close(figure)


__all__ = ["draw_robustness", "legend_label", "robustness_figure"]
