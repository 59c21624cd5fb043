"""A board across probe runs: each run's heads (backbones x heads) from its ``results.json`` in one table.

``simpool board RUNS... --out board/`` writes ``board.md``, ``board.csv`` and ``board.png`` (drawn by
:mod:`simpool.visualize.board`); ``--check`` compares a committed ``board.md`` with what the runs give, so the
board stays true. Pure functions of the results (the keys :mod:`simpool.train.probe.report` writes): each run
gives one row per head at its selected setting, then its k-NN row, then the maps that ignore the image that it
scored on the same test images (uniform, centre, box prior, each head's mean map), beside which the heads' attention
scores are read. ``board.md`` has one row per (backbone, head): the mean ± sample std of its metrics over the runs
(seeds), with their number; ``board.csv`` keeps every run's row. Runs are named by their folder relative to
``--out``, both resolved, so the board does not depend on how the paths were spelt, nor on their order.
"""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
from pathlib import Path

from ..evaluate.attention_quality import read_scores
from ..evaluate.baselines import FIXED
from ..train.probe.report import result_rows

RESULTS = "results.json"
# column: (header, key of a head's row, format); the optional ones appear when some row has them
COLUMNS = (
    ("backbone", "backbone", "s"),
    ("head", "label", "s"),
    ("runs", "runs", "d"),  # of the board's rows only: how many runs the row's means are over
    ("lr", "lr", "g"),
    ("weight decay", "weight_decay", "g"),
    ("held-out top-1", "holdout_top1", ".2f"),
    ("top-1", "test_top1", ".2f"),
    ("BG-gap", "bg_gap", "+.2f"),
    ("MaxBoxAccV2", "MaxBoxAccV2", ".2f"),
    ("PxAP", "PxAP", ".2f"),
    ("params", "params", "d"),
)
OPTIONAL = ("bg_gap", "MaxBoxAccV2", "PxAP")
METRICS = ("holdout_top1", "test_top1", "bg_gap", "MaxBoxAccV2", "PxAP")  # mean ± std over runs; others: their values
QUALITY = "MaxBoxAccV2"  # the attention quality of the figure's x axis
BASELINE = "baseline: "  # the label of a map that ignores the image


def results_path(run: str | os.PathLike) -> Path:
    """A run folder's ``results.json``, or the file itself; a ValueError naming a path that holds none."""
    path = Path(run)
    path = path / RESULTS if path.is_dir() else path
    if not path.is_file():
        raise ValueError(f"{run}: no {RESULTS} there (give probe run folders or their {RESULTS} files)")
    return path


def backbone_name(result: dict) -> str:
    """``model`` or ``model (checkpoint file name)``."""
    backbone = result.get("backbone", {})
    checkpoint = backbone.get("checkpoint")
    return f"{backbone.get('model', '?')} ({Path(checkpoint).name})" if checkpoint else backbone.get("model", "?")


def baseline_rows(result: dict) -> list[dict]:
    """The maps that ignore the image, scored by the run on the same test images (``results.json`` ``baselines``:
    uniform, centre, box prior and each head's own mean map), as rows with their attention scores alone."""
    return [
        {
            "head": name,
            "label": f"{BASELINE}{name}",
            **{key: read_scores(scores).get(key) for key in ("MaxBoxAccV2", "PxAP")},
        }
        for name, scores in result.get("baselines", {}).items()
    ]


def run_rows(result: dict, run: str, name: str | None = None) -> list[dict]:
    """One row per head at its selected setting, then the k-NN row, then the image-independent baselines
    (:func:`baseline_rows`), each with its ``backbone`` (``name``, else :func:`backbone_name`) and ``run``."""
    if "heads" not in result:
        raise ValueError(f"{run}: its {RESULTS} has no 'heads' (not a finished simpool probe run?)")
    rows = [read_scores(row) for row in result_rows(result)] + baseline_rows(result)
    name = name or backbone_name(result)
    return [{**row, "label": row.get("label", row["head"]), "backbone": name, "run": run} for row in rows]


def named_run(run: str | os.PathLike) -> tuple[str | None, Path]:
    """``NAME=PATH`` as ``(NAME, PATH)`` (runs of one name are one backbone on the board, their seeds say), a plain
    path (or one that exists with a ``=`` in it) as ``(None, path)``."""
    text = str(run)
    name, _, path = text.partition("=")
    if not path or Path(text).exists():
        return None, Path(text)
    if not name:
        raise ValueError(f"{text}: give NAME=RUN with a name, or a run folder")
    return name, Path(path)


def gather(runs: list[str | os.PathLike], out: str | os.PathLike) -> list[dict]:
    """Every run's rows, each ``run`` its folder relative to ``out`` and its backbone named by ``NAME=`` where it
    has one (:func:`named_run`); the runs sorted by resolved path (the board does not depend on the order they are
    given in, nor on how they are spelt)."""
    if not runs:
        raise ValueError("no run given: name probe run folders (or their results.json files)")
    rows, base, names = [], Path(out).resolve(), {}
    for run in runs:
        name, path = named_run(run)
        path = results_path(path).resolve()
        if names.get(path, name) != name:
            raise ValueError(f"{path} is given twice, as {names[path]} and as {name}")
        names[path] = name
    for path in sorted(names):
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
        rows += run_rows(result, Path(os.path.relpath(path.parent, base)).as_posix(), names[path])
    return rows


def aggregate(rows: list[dict]) -> list[dict]:
    """One row per (backbone, head label), in the order they first come: ``runs`` (how many), each metric as
    ``(mean, sample std or None for one value)`` over the runs that have it, the other columns as their distinct
    values (a head selected at another lr in one seed shows both)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["backbone"], row["label"]), []).append(row)
    board = []
    for (backbone, label), members in groups.items():
        entry = {"backbone": backbone, "label": label, "runs": len(members)}
        for key in [key for _, key, _ in COLUMNS if key not in entry]:
            values = [member[key] for member in members if member.get(key) is not None]
            if not values:
                entry[key] = None
            elif key in METRICS:
                entry[key] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None)
            else:
                entry[key] = list(dict.fromkeys(values))
        board.append(entry)
    return board


def columns(rows: list[dict]) -> list[tuple[str, str, str]]:
    """The columns shown: every fixed one, an optional one where some row has a value."""
    return [c for c in COLUMNS if c[1] not in OPTIONAL or any(row.get(c[1]) is not None for row in rows)]


def cell(value, spec: str) -> str:
    """A value as the board shows it: ``-`` for none, ``mean ± std`` for a metric, distinct values joined by ``/``."""
    if value is None:
        return "-"
    if isinstance(value, tuple):  # (mean, std or None)
        mean, std = value
        return format(mean, spec) + ("" if std is None else f" ± {std:{spec.lstrip('+')}}")
    if isinstance(value, list):
        return " / ".join(cell(item, spec) for item in value)
    return format(value, spec) if spec != "s" else str(value)


def board_markdown(rows: list[dict]) -> str:
    """The board as a markdown table, one row per (backbone, head) over the runs (:func:`aggregate`), then the
    runs it was gathered from."""
    board = aggregate(rows)
    shown = columns(board)
    lines = ["| " + " | ".join(header for header, _, _ in shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(cell(row.get(key), spec) for _, key, spec in shown) + " |" for row in board]
    runs = list(dict.fromkeys(row["run"] for row in rows))
    note = "mean ± sample std over the runs of a backbone and head"
    return "\n".join(["# Probe board", "", *lines, "", f"{note}. Runs: " + ", ".join(f"`{run}`" for run in runs), ""])


def board_csv(rows: list[dict]) -> str:
    """Every run's rows as CSV: every column (empty where a row has no value), then the run's folder."""
    keys = [key for _, key, _ in COLUMNS if key != "runs"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(keys + ["run"])
    for row in rows:
        writer.writerow([("" if row.get(key) is None else row[key]) for key in keys] + [row["run"]])
    return buffer.getvalue()


def figure_points(rows: list[dict]) -> list[dict]:
    """The figure's points, one per (backbone, head) with an attention quality: ``{"backbone", "label", "x", "y",
    "xerr", "yerr"}`` (x: mean MaxBoxAccV2, y: mean top-1 over the runs, the errors their sample std, 0 for one
    run). The k-NN rows and heads without a scored map (a constant one) have no point."""
    return [
        {
            "backbone": row["backbone"],
            "label": row["label"],
            "x": row[QUALITY][0],
            "y": row["test_top1"][0],
            "xerr": row[QUALITY][1] or 0.0,
            "yerr": row["test_top1"][1] or 0.0,
        }
        for row in aggregate(rows)
        if row.get(QUALITY) is not None and row.get("test_top1") is not None
    ]


def baseline_levels(rows: list[dict]) -> dict[str, float]:
    """Per backbone, the strongest mean MaxBoxAccV2 of the maps that need no model (uniform, centre, box prior):
    the level a head's attention must pass to say more than position (the figure's dashed line)."""
    levels: dict[str, float] = {}
    for row in aggregate(rows):
        if row["label"] in {BASELINE + name for name in FIXED} and row.get(QUALITY) is not None:
            levels[row["backbone"]] = max(levels.get(row["backbone"], float("-inf")), row[QUALITY][0])
    return levels


def stale(path: str | os.PathLike, expected: str) -> bool:
    """Whether the file at ``path`` is missing or differs from ``expected``."""
    path = Path(path)
    return not path.is_file() or path.read_text() != expected


__all__ = [
    "aggregate",
    "baseline_levels",
    "baseline_rows",
    "board_csv",
    "board_markdown",
    "figure_points",
    "gather",
    "named_run",
    "stale",
]
