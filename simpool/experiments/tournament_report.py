"""The tournament's tables and figure: the ranking, ``results.csv``, ``results.md`` and ``results.png``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..utils import atomic_write_bytes
from ..visualize.figures import save_figure as write_figure

FIELDS = ("rank", "pool", "method", "group", "status", "accuracy", "final_loss", "pool_params", "seconds", "error")


def rank(results: list[dict]) -> list[dict]:
    """Sort by accuracy (failed runs last) and number the finished ones 1, 2, ... (ties share a rank)."""
    done = sorted((r for r in results if r["status"] == "ok"), key=lambda r: -float(r["accuracy"]))
    ranked, previous = [], None
    for i, row in enumerate(done):
        position = previous[0] if previous and float(previous[1]) == float(row["accuracy"]) else i + 1
        ranked.append({**row, "rank": position})
        previous = (position, row["accuracy"])
    return ranked + [{**r, "rank": ""} for r in results if r["status"] != "ok"]


def to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def to_markdown(rows: list[dict]) -> str:
    """The ranked table as markdown: rank, pool, method, group, accuracy (%), pool parameters, seconds, status."""
    lines = ["| rank | pool | method | group | top-1 (%) | pool params | seconds | status |", "|---" * 8 + "|"]
    for r in rows:
        accuracy = f"{float(r['accuracy']):.2f}" if r["status"] == "ok" else "-"
        seconds = f"{float(r['seconds']):.0f}" if r.get("seconds") not in ("", None) else "-"
        status = r["status"] if r["status"] == "ok" else f"failed: {r['error']}"
        lines.append(
            f"| {r['rank']} | `{r['pool']}` | {r['method']} | {r['group']} | {accuracy} | {r['pool_params']} "
            f"| {seconds} | {status} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path, title: str = "") -> None:
    """Bars of top-1 accuracy per pool, grouped and coloured by Table 1 group (the style of Figure 3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: (str(r["group"]), -float(r["accuracy"])))
    groups = sorted({str(r["group"]) for r in done})
    colors = {g: plt.get_cmap("tab10")(i) for i, g in enumerate(groups)}
    figure, axis = plt.subplots(figsize=(max(4.0, 0.6 * len(done) + 1.5), 3.6))
    accuracies = [float(r["accuracy"]) for r in done]
    axis.bar(range(len(done)), accuracies, color=[colors[str(r["group"])] for r in done])
    for i, value in enumerate(accuracies):
        axis.text(i, value, f"{value:.1f}", ha="center", va="bottom", fontsize=7)
    axis.set_xticks(range(len(done)), [r["pool"] for r in done], rotation=45, ha="right", fontsize=8)
    if accuracies:
        low, high = min(accuracies), max(accuracies)
        axis.set_ylim(max(0.0, low - max(2.0, (high - low) * 0.5)), min(100.0, high + max(1.0, (high - low) * 0.2)))
    axis.set_ylabel("top-1 accuracy (%)")
    axis.set_title(title, fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[g]) for g in groups]
    axis.legend(handles, [f"group {g}" for g in groups], fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    write_figure(figure, path)


def read_previous(out_dir: Path) -> dict[str, dict]:
    """The rows of ``out_dir/results.csv`` by pool (empty when there is none)."""
    path = out_dir / "results.csv"
    if not path.exists():
        return {}
    with path.open(newline="") as file:
        return {row["pool"]: row for row in csv.DictReader(file)}


def write_tables(out_dir: Path, rows: list[dict]) -> None:
    """``results.csv`` and ``results.md`` of the ranked ``rows``, each written atomically."""
    atomic_write_bytes(out_dir / "results.csv", to_csv(rows).encode())
    atomic_write_bytes(out_dir / "results.md", to_markdown(rows).encode())
