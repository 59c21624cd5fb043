"""The demo's outputs: a Figure-1-style figure, the training curves and a markdown + JSON report."""

from __future__ import annotations

import io
import platform
from pathlib import Path

import numpy as np
import torch

from ..data.bench import SimPoolBench, normalize_images
from ..utils import atomic_write_bytes, write_json

ROWS = (  # (key, label, format)
    ("acc_original", "top-1 original", "{:.3f}"),
    ("acc_mixed_same", "top-1 mixed_same", "{:.3f}"),
    ("acc_mixed_rand", "top-1 mixed_rand", "{:.3f}"),
    ("bg_gap", "BG-gap (mixed_same - mixed_rand)", "{:+.3f}"),
    ("MaxBoxAccV2", "MaxBoxAccV2", "{:.2f}"),
    ("BoxAcc@50", "BoxAcc@50", "{:.2f}"),
    ("CorLoc", "CorLoc (DINO-seg 60%)", "{:.2f}"),
    ("mask_mass", "attention mass in mask", "{:.3f}"),
    ("loss", "final training loss", "{:.3f}"),
    ("seconds", "training seconds", "{:.0f}"),
)

NAMES = {"cls": "CLS", "simpool": "SimPool"}
ATTENTION_LEVEL = 40.0  # MaxBoxAccV2 (percent) the report says each model's attention first passes, or never
CURVE_PANELS = (  # (curve point key, axis label)
    ("top1_original", "top-1 original"),
    ("top1_mixed_rand", "top-1 mixed_rand"),
    ("MaxBoxAccV2", "MaxBoxAccV2"),
    ("mask_mass", "attention mass in mask"),
)


def _versions() -> dict:
    import timm

    import simpool

    return {
        "simpool": getattr(simpool, "__version__", "unknown"),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.platform(),
        "threads": torch.get_num_threads(),
    }


def markdown_table(results: dict) -> str:
    """The comparison as a markdown table, one column per model."""
    names = list(results)
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key, label, fmt in ROWS:
        cells = [fmt.format(results[n][key]) if key in results[n] else "-" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curve_sentences(curves: dict[str, list[dict]], gate: float, level: float = ATTENTION_LEVEL) -> list[str]:
    """What the curves show, from their numbers: one sentence per model on when its attention first reaches
    MaxBoxAccV2 ``level``, and one on the last points (values, the change over the last quarter of the
    updates, who passes the ``mixed_rand`` ``gate``)."""
    curves = {kind: points for kind, points in curves.items() if points}
    if not curves:
        return []
    sentences = []
    for kind, points in curves.items():
        name, last = NAMES.get(kind, kind), points[-1]
        first = next((p for p in points if p["MaxBoxAccV2"] >= level), None)
        if first is None:
            best = max(points, key=lambda p: p["MaxBoxAccV2"])
            sentences.append(
                f"{name} attention never reaches MaxBoxAccV2 {level:g} in {last['step']} updates "
                f"(its highest: {best['MaxBoxAccV2']:.1f} at update {best['step']})."
            )
        else:
            sentences.append(
                f"{name} attention first reaches MaxBoxAccV2 {level:g} at update {first['step']} of {last['step']} "
                f"(epoch {first['epoch']:.2f}, {first['MaxBoxAccV2']:.1f})."
            )
    parts, moves = [], []
    for kind, points in curves.items():
        last = points[-1]
        quarter = min(points, key=lambda p: abs(p["step"] - 0.75 * last["step"]))
        parts.append(
            f"{NAMES.get(kind, kind)} MaxBoxAccV2 {last['MaxBoxAccV2']:.1f}, mask mass {last['mask_mass']:.3f}, "
            f"mixed_rand top-1 {last['top1_mixed_rand']:.3f}"
        )
        moves.append(f"{last['MaxBoxAccV2'] - quarter['MaxBoxAccV2']:+.1f} ({NAMES.get(kind, kind)})")
    passing = [NAMES.get(k, k) for k, points in curves.items() if points[-1]["top1_mixed_rand"] >= gate]
    gate_text = (
        "no model passes"
        if not passing
        else ("both models pass" if len(passing) == len(curves) else f"only {', '.join(passing)} passes")
    )
    last = next(iter(curves.values()))[-1]
    sentences.append(
        f"At the end (update {last['step']}, epoch {last['epoch']:.2f}): {'; '.join(parts)}; over the last quarter "
        f"of the updates MaxBoxAccV2 moved {' and '.join(moves)}, and {gate_text} the {gate:g} gate."
    )
    return sentences


def matched_points(curves: dict[str, list[dict]], gate: float) -> dict | None:
    """Every model at the same ``mixed_rand`` top-1: the level ``min(gate, lowest of the models' best)``, the
    highest level up to the gate that all of them reach, and each model's first curve point at or above it
    (``{"level", "points": {kind: point}}``; None without curves). Comparing attention there, rather than at
    the last update, keeps a model's head start in accuracy out of the comparison of its attention."""
    curves = {kind: points for kind, points in curves.items() if points}
    if not curves:
        return None
    level = min([gate] + [max(p["top1_mixed_rand"] for p in points) for points in curves.values()])
    chosen = {kind: next(p for p in points if p["top1_mixed_rand"] >= level) for kind, points in curves.items()}
    return {"level": level, "points": chosen}


def matched_sentence(matched: dict | None, gate: float) -> list[str]:
    """One sentence on ``matched_points``: the level and each model's attention at its first point there."""
    if not matched:
        return []
    parts = [
        f"{NAMES.get(kind, kind)} at update {p['step']} (mixed_rand {p['top1_mixed_rand']:.3f}): MaxBoxAccV2 "
        f"{p['MaxBoxAccV2']:.1f}, mask mass {p['mask_mass']:.3f}"
        for kind, p in matched["points"].items()
    ]
    where = f"the {gate:g} gate" if matched["level"] >= gate else "the highest level both reach"
    return [f"At matched accuracy (mixed_rand top-1 >= {matched['level']:.3f}, {where}): {'; '.join(parts)}."]


def save_curves(curves: dict[str, list[dict]], uniform_mask_mass: float, gate: float, path: Path) -> Path:
    """``curves.png``: one panel per metric of ``CURVE_PANELS`` against epochs, the models overlaid; chance
    (0.1) on the top-1 panels, the ``gate`` on ``mixed_rand``, a uniform map's level on the mask mass (a
    uniform map has MaxBoxAccV2 0: min-max normalisation leaves no box)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVE_PANELS), figsize=(3.2 * len(CURVE_PANELS), 2.9), squeeze=False)
    for ax, (key, label) in zip(axes[0], CURVE_PANELS, strict=True):
        for kind, points in curves.items():
            epochs, values = [p["epoch"] for p in points], [p[key] for p in points]
            ax.plot(epochs, values, marker="o", ms=3, label=NAMES.get(kind, kind))
        if key.startswith("top1"):
            ax.axhline(0.1, color="grey", ls=":", lw=1, label="chance")
            ax.set_ylim(0, 1)
        if key == "top1_mixed_rand":
            ax.axhline(gate, color="red", ls="--", lw=1, label=f"gate {gate:g}")
        if key == "mask_mass":
            ax.axhline(uniform_mask_mass, color="grey", ls="--", lw=1, label="uniform map")
        if key == "MaxBoxAccV2":
            ax.axhline(ATTENTION_LEVEL, color="grey", ls=":", lw=1, label=f"level {ATTENTION_LEVEL:g}")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def write_report(report: dict, out: Path) -> dict:
    """Complete ``report`` (versions, table, verdict) and write ``report.json`` and ``report.md``."""
    config = report["config"]
    report["versions"] = _versions()
    results = report["results"]
    learned = all(r["learned_object"] for r in results.values())
    cls, sim = results.get("cls", {}), results.get("simpool", {})
    verdict = {
        "both_learned_object": learned,
        "maxboxacc_gain": sim.get("MaxBoxAccV2", np.nan) - cls.get("MaxBoxAccV2", np.nan),
        "accuracy_gain": sim.get("acc_original", np.nan) - cls.get("acc_original", np.nan),
        "bg_gap_change": sim.get("bg_gap", np.nan) - cls.get("bg_gap", np.nan),
    }
    report["verdict"] = verdict
    report["table"] = markdown_table(results)
    report["matched"] = matched_points(report.get("curves", {}), report["gate"])
    report["curve_summary"] = curve_sentences(report.get("curves", {}), report["gate"]) + matched_sentence(
        report["matched"], report["gate"]
    )
    write_json(out / "report.json", report)
    note = (
        "Both models learned the object (mixed_rand top-1 >= {gate}): the attention maps are comparable."
        if learned
        else "At least one model did not learn the object (mixed_rand top-1 < {gate}): its attention map "
        "reflects the background, so the localization comparison is not meaningful at this budget."
    ).format(gate=report["gate"])
    text = "\n".join(
        [
            "# SimPool bench: CLS token vs SimPool",
            "",
            report["table"],
            "",
            f"SimPool - CLS: MaxBoxAccV2 {verdict['maxboxacc_gain']:+.2f}, top-1 {verdict['accuracy_gain']:+.3f}, "
            f"BG-gap {verdict['bg_gap_change']:+.3f}. A uniform map puts {report['uniform_mask_mass']:.3f} of its "
            "mass in the mask.",
            "",
            note,
            "",
            f"![figure]({Path(report['figure']).name})",
            "",
            *_curves_section(report),
            "## Config",
            "",
            "```",
            *(f"{k} = {v}" for k, v in config.items()),
            "```",
            "",
            f"Wall time: {report['wall_seconds']:.0f} s. Versions: "
            + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
            "",
        ]
    )
    atomic_write_bytes(out / "report.md", text.encode())
    return report


def _curves_section(report: dict) -> list[str]:
    """The report's lines on the curves: what they show, the figure, what they cost."""
    if not report.get("curve_summary"):
        return []
    subset, results = report["curve_subset"], report["results"].values()
    points = sum(len(p) for p in report["curves"].values())
    seconds = sum(r["curve_seconds"] for r in results)
    return [
        "## Curves",
        "",
        " ".join(report["curve_summary"]),
        "",
        f"![curves]({Path(report['curves_figure']).name})",
        "",
        f"{points} points on the first {subset['images']} {subset['split']} images of "
        f"{' and '.join(subset['variants'])} (a uniform map's mask mass there: {subset['uniform_mask_mass']:.3f}) "
        f"took {seconds:.0f} s, {100 * report['curve_fraction']:.1f}% of the training time "
        f"({sum(r['seconds'] for r in results):.0f} s).",
        "",
    ]


def _draw_box(ax, box, color="lime") -> None:
    import matplotlib.patches as patches

    x0, y0, x1, y1 = (float(v) for v in box)
    # pixel (i, j) covers [j - 0.5, j + 0.5] in imshow coordinates; x1, y1 are exclusive
    ax.add_patch(patches.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=color, lw=1.2))


def save_figure(models: dict, sources: dict[str, str], config, path: Path, device) -> Path:
    """Figure 1 of the paper on the bench: rows of test images, columns input | CLS attention | SimPool attention.

    Args:
        models: name (``cls``, ``simpool``) -> trained model; sources: name -> its ``attention_maps`` source.
        config: the demo's ``DemoConfig`` (the bench, the split, ``figure_images``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..models import attention_maps
    from ..visualize import overlay

    data = SimPoolBench(config.eval_split, "original", config.bench(), num_images=config.figure_images)
    images, labels, boxes, _ = data.batch(np.arange(len(data)))
    x = normalize_images(images).to(device)
    titles = {"cls": "CLS attention", "simpool": "SimPool attention"}
    columns = [("input", None)] + [(titles.get(kind, kind), kind) for kind in models]
    n = len(data)
    fig, axes = plt.subplots(n, len(columns), figsize=(1.9 * len(columns), 1.9 * n), squeeze=False)
    maps = {kind: attention_maps(m.eval(), x, source=sources[kind]).cpu() for kind, m in models.items()}
    with torch.no_grad():
        preds = {kind: m(x).argmax(1).cpu() for kind, m in models.items()}
    for i in range(n):
        image = images[i].permute(1, 2, 0).numpy()  # (S, S, 3)
        for j, (title, kind) in enumerate(columns):
            ax = axes[i, j]
            if kind is None:
                ax.imshow(image)
                ax.set_ylabel(data.classes[labels[i]], fontsize=7)
            else:
                ax.imshow(overlay(image, maps[kind][i], alpha=0.6))
                ax.set_xlabel(f"pred: {data.classes[preds[kind][i]]}", fontsize=6)
            _draw_box(ax, boxes[i])
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
