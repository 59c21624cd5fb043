"""The demo's outputs: a Figure-1-style figure, the training curves and a markdown + JSON report.

Every attention score stands beside the maps that ignore the image (``report["baselines"]``): the report's
sentences compare each model with the strongest of ``uniform``, ``centre`` and ``box_prior``
(:func:`~simpool.evaluate.attention_quality.strongest_baseline`) and with its own mean map."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import torch

from ..data.bench import SimPoolBench, normalize_images
from ..evaluate.attention_quality import strongest_baseline
from ..evaluate.baselines import FIXED
from ..utils import atomic_write_bytes, write_json
from ..visualize.figures import save_figure as write_figure

ROWS = (  # (key, label, format)
    ("step", "update (checkpoint)", "{:d}"),
    ("acc_original", "top-1 original", "{:.3f}"),
    ("acc_mixed_same", "top-1 mixed_same", "{:.3f}"),
    ("acc_mixed_rand", "top-1 mixed_rand", "{:.3f}"),
    ("bg_gap", "BG-gap (mixed_same - mixed_rand)", "{:+.3f}"),
    ("MaxBoxAccV2", "MaxBoxAccV2", "{:.2f}"),
    ("BoxAcc@50", "BoxAcc@50", "{:.2f}"),
    ("PxAP", "PxAP", "{:.2f}"),
    ("CorLoc", "CorLoc (DINO-seg 60%)", "{:.2f}"),
    ("mask_mass", "attention mass in mask", "{:.3f}"),
    ("loss", "final training loss", "{:.3f}"),
    ("seconds", "training seconds", "{:.0f}"),
    ("parameters", "parameters", "{:,}"),
)
BASELINE_COLUMNS = (("MaxBoxAccV2", "{:.2f}"), ("PxAP", "{:.2f}"), ("CorLoc", "{:.2f}"), ("mask_mass", "{:.3f}"))
NAMES = {"cls": "CLS", "simpool": "SimPool"}
CURVE_PANELS = (  # (curve point key, axis label)
    ("top1_original", "top-1 original"),
    ("top1_mixed_rand", "top-1 mixed_rand"),
    ("MaxBoxAccV2", "MaxBoxAccV2"),
    ("PxAP", "PxAP"),
    ("mask_mass", "attention mass in mask"),
)
CURVE_LEVELS = (("uniform", ":", "uniform map"), ("centre", "--", "centre map"))  # (baseline, line style, label)


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


def markdown_table(results: dict, rows: tuple = ROWS) -> str:
    """The comparison as a markdown table, one column per model; a row no model has is left out."""
    names = list(results)
    lines = ["| metric | " + " | ".join(NAMES.get(n, n) for n in names) + " |", "|---" * (len(names) + 1) + "|"]
    for key, label, fmt in rows:
        if not any(key in results[n] for n in names):
            continue
        cells = [fmt.format(results[n][key]) if key in results[n] else "-" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def baseline_table(results: dict, baselines: dict) -> str:
    """Each model's attention beside the maps that ignore the image, one row per map: the models, ``uniform``,
    ``centre``, ``box_prior``, each model at initialisation and each model's own mean map."""
    rows = [(f"{NAMES.get(kind, kind)} attention", scores) for kind, scores in results.items()]
    rows += [(f"{name} map", baselines[name]) for name in FIXED if name in baselines]
    for group, label in (("init", "at initialisation"), ("mean_map", "mean map")):
        rows += [(f"{NAMES.get(kind, kind)} {label}", scores) for kind, scores in baselines.get(group, {}).items()]
    lines = [
        "| map | " + " | ".join(key for key, _ in BASELINE_COLUMNS) + " |",
        "|---" * (len(BASELINE_COLUMNS) + 1) + "|",
    ]
    for label, scores in rows:
        lines.append(f"| {label} | " + " | ".join(fmt.format(scores[key]) for key, fmt in BASELINE_COLUMNS) + " |")
    return "\n".join(lines)


def _against(value: float, reference: tuple[str, float]) -> str:
    """``"8.6 above the strongest map that ignores the image (centre, 42.3)"``."""
    name, level = reference
    side = "above" if value >= level else "below"
    return f"{abs(value - level):.1f} {side} the strongest map that ignores the image ({name}, {level:.1f})"


def baseline_sentences(results: dict, baselines: dict, metrics: tuple[str, ...] = ("MaxBoxAccV2", "PxAP")) -> list[str]:
    """One sentence per model: its attention's ``metrics`` against the strongest image-independent baseline of each
    (``strongest_baseline``) and against its own mean map, and its attention at initialisation."""
    fixed = {name: baselines[name] for name in FIXED if name in baselines}
    sentences = []
    for kind, result in results.items():
        parts = []
        for metric in metrics:
            strongest = strongest_baseline(fixed, metric)
            text = f"{metric} {result[metric]:.1f}, {_against(result[metric], strongest)}"
            if kind in baselines.get("mean_map", {}):
                text += f"; its own mean map scores {baselines['mean_map'][kind][metric]:.1f}"
            parts.append(text)
        init = baselines.get("init", {}).get(kind)
        start = f" At initialisation: {', '.join(f'{m} {init[m]:.1f}' for m in metrics)}." if init else ""
        sentences.append(f"{NAMES.get(kind, kind)}'s attention: {'. '.join(parts)}.{start}")
    return sentences


def curve_sentences(
    curves: dict[str, list[dict]], gate: float, level: float = 40.0, label: str | None = None
) -> list[str]:
    """What the curves show, from their numbers: one sentence per model on when its attention first reaches
    MaxBoxAccV2 ``level`` (``label``: how the sentences name it), and one on the last points (values, the change
    over the last quarter of the updates, who passes the ``mixed_rand`` ``gate``)."""
    curves = {kind: points for kind, points in curves.items() if points}
    if not curves:
        return []
    label = label or f"MaxBoxAccV2 {level:g}"
    sentences = []
    for kind, points in curves.items():
        name, last = NAMES.get(kind, kind), points[-1]
        first = next((p for p in points if p["MaxBoxAccV2"] >= level), None)
        if first is None:
            best = max(points, key=lambda p: p["MaxBoxAccV2"])
            sentences.append(
                f"{name} attention never reaches {label} in {last['step']} updates "
                f"(its highest: {best['MaxBoxAccV2']:.1f} at update {best['step']})."
            )
        else:
            sentences.append(
                f"{name} attention first reaches {label} at update {first['step']} of {last['step']} "
                f"(epoch {first['epoch']:.2f}, {first['MaxBoxAccV2']:.1f})."
            )
    return sentences + [_end_sentence(curves, gate)]


def _end_sentence(curves: dict[str, list[dict]], gate: float) -> str:
    """The curves' last points, the change of MaxBoxAccV2 over the last quarter, who passes the gate."""
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
    return (
        f"At the end (update {last['step']}, epoch {last['epoch']:.2f}): {'; '.join(parts)}; over the last quarter "
        f"of the updates MaxBoxAccV2 moved {' and '.join(moves)}, and {gate_text} the {gate:g} gate."
    )


def matched_points(curves: dict[str, list[dict]], gate: float) -> dict | None:
    """Every model at the same ``mixed_rand`` top-1: the level ``min(gate, lowest of the models' best)``, the
    highest level up to the gate that all of them reach, and each model's first curve point at or above it
    (``{"level", "points": {kind: point}}``; None without curves). Comparing attention there, rather than at
    the last update, keeps a model's head start in accuracy out of the comparison of its attention. The demo
    reads it on its validation curves only."""
    curves = {kind: points for kind, points in curves.items() if points}
    if not curves:
        return None
    level = min([gate] + [max(p["top1_mixed_rand"] for p in points) for points in curves.values()])
    chosen = {kind: next(p for p in points if p["top1_mixed_rand"] >= level) for kind, points in curves.items()}
    return {"level": level, "points": chosen}


def matched_sentence(matched: dict | None, gate: float) -> list[str]:
    """One sentence on the demo's ``matched`` report: the level and checkpoints chosen on the validation curves,
    and those checkpoints' attention (and mean maps) on the evaluation split."""
    if not matched:
        return []
    where = f"the {gate:g} gate" if matched["level"] >= gate else "the highest level both reach"
    chosen = ", ".join(
        f"{NAMES.get(kind, kind)} at update {p['step']} ({matched['chosen_on']} mixed_rand {p['top1_mixed_rand']:.3f})"
        for kind, p in matched["points"].items()
    )
    scored = "; ".join(
        f"{NAMES.get(kind, kind)} mixed_rand top-1 {r['acc_mixed_rand']:.3f}, MaxBoxAccV2 {r['MaxBoxAccV2']:.1f} "
        f"(its mean map {matched['mean_map'][kind]['MaxBoxAccV2']:.1f}), PxAP {r['PxAP']:.1f} "
        f"(its mean map {matched['mean_map'][kind]['PxAP']:.1f}), mask mass {r['mask_mass']:.3f}"
        for kind, r in matched["results"].items()
    )
    return [
        f"At matched accuracy, chosen on {matched['chosen_on']} (mixed_rand top-1 >= {matched['level']:.3f}, "
        f"{where}): {chosen}; these checkpoints on {matched['evaluated_on']}: {scored}."
    ]


def save_curves(curves: dict[str, list[dict]], levels: dict[str, dict], gate: float, path: Path) -> Path:
    """``curves.png``: one panel per metric of ``CURVE_PANELS`` against epochs, the models overlaid; chance
    (0.1) on the top-1 panels, the ``gate`` on ``mixed_rand``, and the uniform and centre maps' scores on the
    curves' images (``levels``: ``{"uniform": scores, "centre": scores}``) on the attention panels."""
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
        for name, style, text in CURVE_LEVELS:
            if key in levels.get(name, {}):
                ax.axhline(levels[name][key], color="grey", ls=style, lw=1, label=text)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return write_figure(fig, path)


def verdict(results: dict, baselines: dict) -> dict:
    """SimPool - CLS on the headline numbers, whether both learned the object, and each model's margin over the
    strongest image-independent baseline and over its own mean map (MaxBoxAccV2 and PxAP)."""
    cls, sim = results.get("cls", {}), results.get("simpool", {})
    fixed = {name: baselines[name] for name in FIXED if name in baselines}
    strongest = {metric: strongest_baseline(fixed, metric) for metric in ("MaxBoxAccV2", "PxAP")} if fixed else {}
    return {
        "both_learned_object": all(r["learned_object"] for r in results.values()),
        "maxboxacc_gain": sim.get("MaxBoxAccV2", np.nan) - cls.get("MaxBoxAccV2", np.nan),
        "pxap_gain": sim.get("PxAP", np.nan) - cls.get("PxAP", np.nan),
        "accuracy_gain": sim.get("acc_original", np.nan) - cls.get("acc_original", np.nan),
        "bg_gap_change": sim.get("bg_gap", np.nan) - cls.get("bg_gap", np.nan),
        "strongest_baseline": {metric: {"name": name, "value": value} for metric, (name, value) in strongest.items()},
        "over_strongest_baseline": {
            kind: {metric: r[metric] - value for metric, (_, value) in strongest.items()} for kind, r in results.items()
        },
        "over_own_mean_map": {
            kind: {metric: r[metric] - baselines["mean_map"][kind][metric] for metric in strongest}
            for kind, r in results.items()
            if kind in baselines.get("mean_map", {})
        },
    }


def write_report(report: dict, out: Path) -> dict:
    """Complete ``report`` (versions, tables, verdict, sentences) and write ``report.json`` and ``report.md``."""
    report["versions"] = _versions()
    results, baselines = report["results"], report.get("baselines", {})
    report["verdict"] = verdict(results, baselines)
    report["table"] = markdown_table(results)
    report["baseline_table"] = baseline_table(results, baselines) if baselines else ""
    report["baseline_summary"] = baseline_sentences(results, baselines) if baselines else []
    levels = report.get("curve_subset", {}).get("baselines", {})
    level, label = 40.0, None
    if levels:
        name, level = strongest_baseline(levels)
        label = f"the {name} map's MaxBoxAccV2 on the curves' images ({level:.1f})"
    report["curve_summary"] = curve_sentences(report.get("curves", {}), report["gate"], level, label)
    report["curve_summary"] += matched_sentence(report.get("matched"), report["gate"])
    write_json(out / "report.json", report)
    atomic_write_bytes(out / "report.md", _markdown(report).encode())
    return report


def _markdown(report: dict) -> str:
    """``report.md``: the tables, the sentences, the figures and the config."""
    gains, learned = report["verdict"], report["verdict"]["both_learned_object"]
    note = (
        "Both models learned the object (mixed_rand top-1 >= {gate}): the attention maps are comparable."
        if learned
        else "At least one model did not learn the object (mixed_rand top-1 < {gate}): its attention map "
        "reflects the background, so the localization comparison is not meaningful at this budget."
    ).format(gate=report["gate"])
    config = report["config"]
    lines = [
        "# SimPool bench: CLS token vs SimPool",
        "",
        f"On the first {config['eval_images']} images of the {config['eval_split']} split:",
        "",
        report["table"],
        "",
        f"SimPool - CLS: MaxBoxAccV2 {gains['maxboxacc_gain']:+.2f}, PxAP {gains['pxap_gain']:+.2f}, top-1 "
        f"{gains['accuracy_gain']:+.3f}, BG-gap {gains['bg_gap_change']:+.3f}. A uniform map puts "
        f"{report['uniform_mask_mass']:.3f} of its mass in the mask.",
        "",
        note,
        "",
        *_baselines_section(report),
        f"![figure]({Path(report['figure']).name})",
        "",
        *_curves_section(report),
        *_matched_section(report),
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
    return "\n".join(lines)


def _baselines_section(report: dict) -> list[str]:
    """The report's lines on the maps that ignore the image."""
    if not report.get("baseline_table"):
        return []
    return [
        "## Against maps that ignore the image",
        "",
        report["baseline_table"],
        "",
        " ".join(report["baseline_summary"]),
        "",
    ]


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
        f"({sum(r['seconds'] for r in results):.0f} s), checkpoints included.",
        "",
    ]


def _matched_section(report: dict) -> list[str]:
    """The matched-accuracy checkpoints, chosen on validation, scored on the evaluation split."""
    matched = report.get("matched")
    if not matched:
        return []
    return [
        f"## At matched accuracy (chosen on {matched['chosen_on']}, scored on {matched['evaluated_on']})",
        "",
        markdown_table(matched["results"]),
        "",
        "Their mean maps:",
        "",
        baseline_table({}, {"mean_map": matched["mean_map"]}),
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
    from ..visualize.overlay import add_colorbar

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
    add_colorbar(fig, axes[:, 1:])  # each map's scale; a uniform map is drawn uniform (overlay)
    return write_figure(fig, path)
