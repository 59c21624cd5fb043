"""What a trained probe grid scores: every entry's accuracy on every test set, parameters and GFLOPs, each head's
selected setting (lr, weight decay, options: best held-out top-1; the test sets are never read for it), the
selection, the k-NN row (DINO's protocol on the linear head's features), the BG-gap (``mixed_same - mixed_rand``)
where the IN-9 variants are test sets, and each head's attention quality on a test split with boxes (and masks:
a bench export) beside the image-independent baselines (:mod:`.attention`). Only numbers and tables:
:mod:`simpool.visualize.probe` draws ``probe.png`` and ``attention.png``, :mod:`simpool.visualize.robustness`
``robustness.png``, from a :class:`ProbeReport`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...analysis.resources import count_flops, count_parameters
from ...evaluate.attention_quality import strongest_baseline
from ...evaluate.features import format_table
from ...evaluate.knn import knn_classify_many
from ...evaluate.robustness import bg_gap
from ..distributed import DistInfo, all_reduce_sum
from .attention import LEARNED_RULE, ProbeAttention, attention_scores
from .config import ProbeConfig, resolved_lrs
from .grid import ProbeGrid

KNN_TEMPERATURE = 0.07  # DINO's eval_knn.py
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


def test_scores(tests: dict[str, dict], index: int) -> dict[str, dict]:
    """Entry ``index``'s ``{test set: {"top1", "top5"}}``."""
    return {name: {"top1": float(t["top1"][index]), "top5": float(t["top5"][index])} for name, t in tests.items()}


def entry_rows(grid: ProbeGrid, held: dict, tests: dict[str, dict], tokens: torch.Tensor) -> list[dict]:
    """One row per entry (head x options x lr x weight decay): its setting, parameters, GFLOPs on ``tokens
    (1, T, C)``, held-out accuracy and accuracy on every test set (``test_top1``/``test_top5``: the first's)."""
    entries = []
    for index, (entry, head) in enumerate(zip(grid.entries, grid.heads, strict=True)):
        head.eval()
        scores = test_scores(tests, index)
        first = next(iter(scores.values()))
        entries.append(
            {
                **entry.setting(),
                "label": entry.label,
                "params": count_parameters(head),
                "gflops": head_gflops(head, tokens),
                "holdout_top1": float(held["top1"][index]),
                "test_top1": first["top1"],
                "test_top5": first["top5"],
                "test_sets": scores,
            }
        )
    return entries


def with_bg_gap(row: dict) -> dict:
    """``row`` with its ``bg_gap`` (``mixed_same - mixed_rand`` top-1) when both are among its test sets."""
    top1 = {name: scores["top1"] for name, scores in row["test_sets"].items()}
    return {**row, "bg_gap": bg_gap(top1)} if {"mixed_same", "mixed_rand"} <= set(top1) else row


def knn_hits(fit: dict, part: dict, k: int, num_classes: int) -> torch.Tensor:
    """This process's top-1 and top-5 hits ``(2,)`` of DINO's weighted k-NN on its shard of ``part``'s features."""
    n = len(part["labels"])
    hits = torch.zeros(2, dtype=torch.float64, device=fit["features"].device)
    if n:  # percentages of n images back to counts (exact: 100 * c / n then rounded)
        args = (fit["features"], fit["labels"], part["features"], part["labels"])
        scores = knn_classify_many(*args, (k,), KNN_TEMPERATURE, num_classes)[k]
        hits += torch.tensor([round(scores["top1"] * n / 100), round(scores["top5"] * n / 100)], device=hits.device)
    return hits


def knn_row(fit: dict, held: dict, tests: dict[str, dict], k: int, num_classes: int) -> dict:
    """DINO's weighted k-NN (:func:`~simpool.evaluate.knn.knn_classify_many`, ``T = 0.07``) on the linear head's
    features: the training part's images (``fit``: every process's) vote for the held-out part's and every test
    set's (each process its own shard, the hits summed over processes; ``k`` at most the training part's size).
    Every process must call it."""
    k = min(k, len(fit["features"]))

    def scores(part: dict) -> dict:
        hits = all_reduce_sum(knn_hits(fit, part, k, num_classes)) * 100.0 / max(part["count"], 1)  # (2,)
        return {"top1": float(hits[0]), "top5": float(hits[1])}

    test_sets = {name: scores(part) for name, part in tests.items()}
    first = next(iter(test_sets.values()))
    row = {"head": "knn", "label": f"knn (k={k})", "k": k, "temperature": KNN_TEMPERATURE}
    row.update(holdout_top1=scores(held)["top1"], test_top1=first["top1"], test_top5=first["top5"])
    return with_bg_gap({**row, "test_sets": test_sets})


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
        "weight_decays": list(settings.weight_decays),
        "head_kwargs": settings.head_kwargs,
        "test_splits": [config.data.val_split, *settings.test_splits],
        "knn_k": settings.knn_k,
        "opt": settings.opt,
        "epochs": run.epochs,
        "batch_size": run.batch_size,
        "holdout": settings.holdout,
        "cache": settings.cache,
        "blocks": settings.blocks,
        "block_indices": list(settings.block_indices),
        "blocks_mode": settings.blocks_mode,
        "with_cls": settings.with_cls,
        "seed": run.seed,
    }


SELECTED_KEYS = ("head", "label", "lr", "weight_decay", "options", "holdout_top1", "test_top1", "test_top5")


@torch.no_grad()
def probe_report(
    config: ProbeConfig,
    grid: ProbeGrid,
    held: dict,
    tests: dict[str, dict],
    finished: bool,
    info: DistInfo,
    knn: dict | None = None,
) -> ProbeReport:
    """The table of every entry, each head at its selected setting (with its attention scores), the selection.
    Every process must call it (the attention is scored by all of them)."""
    img = config.data.img_size
    images = torch.zeros(1, 3, img, img, device=info.device)
    tokens = grid.tokens(images)  # (1, T, C)
    entries = entry_rows(grid, held, tests, tokens)
    best = best_per_head(entries)  # from the held-out top-1 alone
    per_head = [with_bg_gap({**entries[index], "index": index}) for index in best.values()]
    selected = max(per_head, key=lambda e: e["holdout_top1"])
    attention = attention_scores(config, grid, best, info)
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
        "num_test": next(iter(tests.values()))["count"],
        "test_sets": [{"name": name, "count": t["count"]} for name, t in tests.items()],
        "entries": entries,
        "heads": per_head,
        "selected": {key: selected[key] for key in SELECTED_KEYS},
    }
    if knn is not None:
        result["knn"] = knn
    if attention:
        result.update(baselines=attention.baselines, box_prior=attention.prior, attention_rule=LEARNED_RULE)
    return ProbeReport(result, attention)


def result_rows(result: dict) -> list[dict]:
    """The rows of a probe's ``results.json`` that tables and figures show: each head at its selected setting, then
    the k-NN row when the run has one."""
    return [*result["heads"], *([result["knn"]] if "knn" in result else [])]


def _cell(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _score(value):
    """An attention score for a table: ``-`` where there is none (a head without one, or a constant map)."""
    return "-" if value is None else value


def heads_table(result: dict) -> str:
    """Each head at its selected setting (its options in its name, lr, weight decay), parameters, GFLOPs, held-out
    and test accuracy (a column per further test set, and the BG-gap when the IN-9 variants were tested), attention
    scores; then the k-NN row on the linear head's features."""
    names = [t["name"] for t in result.get("test_sets", [])][1:]
    gap = any("bg_gap" in h for h in result["heads"])
    rows = []
    for h in result_rows(result):
        extra = [_cell(h["test_sets"][name]["top1"]) for name in names] + ([_cell(h.get("bg_gap"))] if gap else [])
        rows.append(
            (
                h.get("label", h["head"]),
                _cell(h.get("lr"), "g"),
                _cell(h.get("weight_decay"), "g"),
                h.get("params", "-"),
                _cell(h.get("gflops"), ".3g"),
                h["holdout_top1"],
                h["test_top1"],
                h["test_top5"],
                *extra,
                *(_score(h.get(key)) for key in ATTENTION_SCORES),
            )
        )
    header = ("head", "lr", "wd", "params", "GFLOPs", "held-out top1", "test top1", "test top5")
    header += (*(f"{name} top1" for name in names), *(("BG-gap",) if gap else ()), *ATTENTION_HEADER)
    return format_table(rows, header)


def baselines_table(result: dict) -> str:
    """The image-independent maps on the same test images, scored as the heads are: ``uniform``, ``centre``,
    ``box_prior`` and each head's ``mean_map``."""
    rows = [(name, *(_score(s.get(key)) for key in ATTENTION_SCORES)) for name, s in result["baselines"].items()]
    return format_table(rows, ("baseline", *ATTENTION_HEADER))


def attention_lines(result: dict) -> list[str]:
    """Where the box prior came from, each attention score's strongest image-independent baseline and the heads
    above it, and the rule for reading the maps."""
    prior = result["box_prior"]
    lines = [f"box_prior: the mean object of the {prior['split']} split ({prior['from']}, {prior['metadata']})"]
    for metric in ("MaxBoxAccV2", "PxAP"):
        if metric in result["baselines"]["centre"]:
            name, value = strongest_baseline(result["baselines"], metric)
            above = [h["head"] for h in result["heads"] if h.get(metric) is not None and h[metric] > value]
            lines.append(
                f"{metric}: strongest image-independent baseline {name} {value:.2f}; heads above it: "
                + (", ".join(above) or "none")
            )
    return [*lines, result["attention_rule"]]


def selection_line(result: dict) -> str:
    """The entry the held-out split selected and its test accuracy."""
    selected = result["selected"]
    decay = f" wd {selected['weight_decay']:g}" if "weight_decay" in selected else ""
    return (
        f"selected on the held-out split: {selected.get('label', selected['head'])} lr {selected['lr']:g}{decay}: "
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
    "knn_hits",
    "knn_row",
    "probe_report",
    "result_rows",
    "selection_line",
    "test_scores",
    "with_bg_gap",
]
