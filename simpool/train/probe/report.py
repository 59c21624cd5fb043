"""What a trained probe grid scores: every entry's accuracy, parameters and GFLOPs, each head's selected lr
(best held-out top-1), the selection, and each head's attention quality on a test split with boxes (and masks:
a bench export) beside the image-independent baselines (:mod:`.attention`). Only numbers and tables:
:mod:`simpool.visualize.probe` draws ``probe.png`` and ``attention.png`` from a :class:`ProbeReport`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...analysis.resources import count_flops, count_parameters
from ...evaluate.attention_quality import strongest_baseline
from ...evaluate.features import format_table
from .attention import LEARNED_RULE, ProbeAttention, attention_scores
from .config import ProbeConfig, resolved_lrs
from .grid import ProbeGrid

ATTENTION_SCORES = ("MaxBoxAccV2", "PxAP", "mask_mass")  # a head's attention scores in the tables
ATTENTION_HEADER = ("MaxBoxAccV2", "PxAP", "mask mass")


@dataclass
class ProbeReport:
    """``result``: what ``results.json`` holds; ``attention``: the heads' maps on the test images and their scores
    (:class:`~.attention.ProbeAttention`: the rows of ``attention.png``, ``attention_maps.npz``), ``None`` when
    the test split has no boxes."""

    result: dict
    attention: ProbeAttention | None = None


def head_gflops(head: torch.nn.Module, tokens: torch.Tensor) -> float:
    """GFLOPs of one head on one image's tokens ``(1, T, C)``. Its parameters are frozen while counting: the
    counter's module hooks cannot follow a parameter handed as is to a submodule (a learned query) without grad."""
    flags = [p.requires_grad for p in head.parameters()]
    head.requires_grad_(False)
    try:
        return count_flops(head, tokens) / 1e9
    finally:
        for param, flag in zip(head.parameters(), flags, strict=True):
            param.requires_grad_(flag)


def entry_rows(grid: ProbeGrid, held: dict, test: dict, tokens: torch.Tensor) -> list[dict]:
    """One row per head x lr: its parameters, GFLOPs on ``tokens (1, T, C)``, held-out and test accuracy."""
    entries = []
    for index, ((name, lr), head) in enumerate(zip(grid.entries, grid.heads, strict=True)):
        head.eval()
        entries.append(
            {
                "head": name,
                "lr": lr,
                "params": count_parameters(head),
                "gflops": head_gflops(head, tokens),
                "holdout_top1": float(held["top1"][index]),
                "test_top1": float(test["top1"][index]),
                "test_top5": float(test["top5"][index]),
            }
        )
    return entries


def best_per_head(entries: list[dict]) -> dict[str, int]:
    """Each head's entry of best held-out top-1 (the first of equals): ``{head: index}``, in the heads' order."""
    best: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if entry["head"] not in best or entry["holdout_top1"] > entries[best[entry["head"]]]["holdout_top1"]:
            best[entry["head"]] = index
    return best


def settings_of(config: ProbeConfig) -> dict:
    """The protocol's settings as ``results.json`` records them."""
    settings, run = config.probe, config.train
    return {
        "heads": list(settings.heads),
        "lrs": resolved_lrs(settings),
        "opt": settings.opt,
        "epochs": run.epochs,
        "batch_size": run.batch_size,
        "holdout": settings.holdout,
        "cache": settings.cache,
        "blocks": settings.blocks,
        "blocks_mode": settings.blocks_mode,
        "with_cls": settings.with_cls,
        "seed": run.seed,
    }


@torch.no_grad()
def probe_report(
    config: ProbeConfig, grid: ProbeGrid, held: dict, test: dict, finished: bool, device: torch.device
) -> ProbeReport:
    """The table of every entry, each head at its best lr (with its attention scores), the selection."""
    img = config.data.img_size
    images = torch.zeros(1, 3, img, img, device=device)
    tokens = grid.tokens(images)  # (1, T, C)
    entries = entry_rows(grid, held, test, tokens)
    best = best_per_head(entries)
    per_head = [{**entries[index], "index": index} for index in best.values()]
    selected = max(per_head, key=lambda e: e["holdout_top1"])
    attention = attention_scores(config, grid, best, device)
    for row in per_head:
        row.update(attention.scores[row["head"]] if attention else {})
    result = {
        "finished": finished,
        "backbone": {
            "model": config.model.name,
            "checkpoint": config.model.checkpoint,
            "params": count_parameters(grid.backbone),
            "gflops": count_flops(grid.backbone, images) / 1e9,
            "tokens": list(tokens.shape[1:]),
        },
        "settings": settings_of(config),
        "num_holdout": held["count"],
        "num_test": test["count"],
        "entries": entries,
        "heads": per_head,
        "selected": {key: selected[key] for key in ("head", "lr", "holdout_top1", "test_top1", "test_top5")},
    }
    if attention:
        result.update(baselines=attention.baselines, box_prior=attention.prior, attention_rule=LEARNED_RULE)
    return ProbeReport(result, attention)


def heads_table(result: dict) -> str:
    """Each head at its selected lr: lr, parameters, GFLOPs, held-out and test accuracy, attention scores."""
    rows = [
        (
            h["head"],
            f"{h['lr']:g}",
            h["params"],
            f"{h['gflops']:.3g}",
            h["holdout_top1"],
            h["test_top1"],
            h["test_top5"],
            *(h.get(key, "-") for key in ATTENTION_SCORES),
        )
        for h in result["heads"]
    ]
    header = ("head", "lr", "params", "GFLOPs", "held-out top1", "test top1", "test top5", *ATTENTION_HEADER)
    return format_table(rows, header)


def baselines_table(result: dict) -> str:
    """The image-independent maps on the same test images, scored as the heads are: ``uniform``, ``centre``,
    ``box_prior`` and each head's ``mean_map``."""
    rows = [(name, *(s.get(key, "-") for key in ATTENTION_SCORES)) for name, s in result["baselines"].items()]
    return format_table(rows, ("baseline", *ATTENTION_HEADER))


def attention_lines(result: dict) -> list[str]:
    """Where the box prior came from, each attention score's strongest image-independent baseline and the heads
    above it, and the rule for reading the maps."""
    prior = result["box_prior"]
    lines = [f"box_prior: the mean object of the {prior['split']} split ({prior['from']}, {prior['metadata']})"]
    for metric in ("MaxBoxAccV2", "PxAP"):
        if metric in result["baselines"]["centre"]:
            name, value = strongest_baseline(result["baselines"], metric)
            above = [h["head"] for h in result["heads"] if h[metric] > value]
            lines.append(
                f"{metric}: strongest image-independent baseline {name} {value:.2f}; heads above it: "
                + (", ".join(above) or "none")
            )
    return [*lines, result["attention_rule"]]


def selection_line(result: dict) -> str:
    """The entry the held-out split selected and its test accuracy."""
    selected = result["selected"]
    return (
        f"selected on the held-out split: {selected['head']} lr {selected['lr']:g}: "
        f"test top-1 {selected['test_top1']:.2f}, top-5 {selected['test_top5']:.2f}"
    )


__all__ = [
    "ProbeReport",
    "attention_lines",
    "baselines_table",
    "best_per_head",
    "entry_rows",
    "head_gflops",
    "heads_table",
    "probe_report",
    "selection_line",
]
