"""The demo's outputs: a Figure-1-style figure and a markdown + JSON report of the bench comparison."""

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
