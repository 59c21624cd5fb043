"""What a trained probe grid scores: every entry's accuracy, parameters and GFLOPs, each head's selected lr
(best held-out top-1), the selection, and each head's attention quality on a test split with boxes (and masks:
a bench export). Only numbers and tables: :mod:`simpool.visualize.probe` draws ``probe.png`` and
``attention.png`` from a :class:`ProbeReport`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torchvision import transforms

from ...analysis.resources import count_flops, count_parameters
from ...data.folders import load_rgb
from ...data.wsol import read_wsol_metadata
from ...evaluate.attention_quality import attention_quality
from ...evaluate.features import format_table
from ...models.attention import attention_maps
from .config import ProbeConfig, resolved_lrs
from .grid import ProbeGrid

ATTENTION_BATCH = 32  # test images per forward when scoring attention


@dataclass
class ProbeReport:
    """``result``: what ``results.json`` holds; ``pictures`` (RGB ``(img, img, 3)``) and ``maps`` (head ->
    ``(rows, h, w)``): the rows of ``attention.png``, empty when the test split has no boxes or
    ``probe.figure_images`` is 0."""

    result: dict
    pictures: list[np.ndarray] = field(default_factory=list)
    maps: dict[str, np.ndarray] = field(default_factory=dict)


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
    scores, pictures, maps = attention_scores(config, grid, best, device)
    for row in per_head:
        row.update(scores.get(row["head"], {}))
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
    return ProbeReport(result, pictures, maps)


def find_metadata(config: ProbeConfig) -> Path | None:
    """The test split's wsolevaluation metadata: ``probe.metadata``, else ``<root>/../metadata/<split>`` (a
    ``simpool bench export --format wsol`` folder whose ``dataset/`` is the root) or ``<root>/metadata/<split>``."""
    if config.probe.metadata:
        return Path(config.probe.metadata)
    root = Path(config.data.root)
    for candidate in (root.parent / "metadata" / config.data.val_split, root / "metadata" / config.data.val_split):
        if (candidate / "localization.txt").is_file():
            return candidate
    return None


def bench_masks(root: Path, image_ids: list[str]) -> np.ndarray | None:
    """The exact object masks ``(N, S, S)`` of bench images, re-rendered from the export's ``bench.json``
    (``<split>/<class>/<index>.png``), or ``None`` when the folder is not a bench export."""
    from ...data.bench import BenchConfig, SimPoolBench

    manifest = next((p / "bench.json" for p in (root, root.parent) if (p / "bench.json").is_file()), None)
    if manifest is None:
        return None
    settings = json.loads(manifest.read_text())
    benches, masks = {}, []
    for image_id in image_ids:
        split, index = Path(image_id).parts[0], int(Path(image_id).stem)
        part = next((p for p in settings.get("parts", []) if p["split"] == split), None)
        if part is None:
            return None
        if split not in benches:
            config = BenchConfig(**settings["config"])
            benches[split] = SimPoolBench(split, part["variant"], config, num_images=part["num_images"])
        masks.append(benches[split].render(index)[1])
    return np.stack(masks)


def head_maps(grid: ProbeGrid, best: dict[str, int], images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each head's attention ``(B, h, w)`` on ``images (B, 3, H, W)``, at its selected lr. ``linear``'s map is the
    backbone's CLS attention in its last block (uniform without a CLS token)."""
    tokens = grid.tokens(images)  # (B, T, C)
    h, w = grid.backbone.grid
    maps = {}
    for name, index in best.items():
        attention = grid.heads[index].attention(tokens)  # (B, N) or None
        if attention is None:
            if grid.backbone.num_prefix_tokens and hasattr(grid.backbone.model, "blocks"):
                attention = attention_maps(grid.backbone.model, images, source="cls").flatten(1)  # (B, N)
            else:
                attention = torch.ones(len(images), h * w, device=images.device)  # (B, N)
        maps[name] = attention.float().reshape(-1, h, w).cpu()  # (B, h, w)
    return maps


@torch.no_grad()
def attention_scores(
    config: ProbeConfig, grid: ProbeGrid, best: dict[str, int], device: torch.device
) -> tuple[dict, list[np.ndarray], dict[str, np.ndarray]]:
    """Each head's (at its selected lr) MaxBoxAccV2 and mask mass on the test images with boxes, and the rows of
    ``attention.png``: ``(scores, pictures, maps)``; ``({}, [], {})`` when the test split has no box metadata."""
    metadata_dir = find_metadata(config)
    if metadata_dir is None:
        return {}, [], {}
    metadata = read_wsol_metadata(metadata_dir)
    ids = [i for i in metadata.image_ids if i in metadata.boxes]
    ids = ids[: config.probe.attention_images or None]
    root, img, rows = Path(config.data.root), config.data.img_size, config.probe.figure_images
    transform = transforms.Compose(
        [transforms.Resize((img, img)), transforms.ToTensor(), transforms.Normalize(config.data.mean, config.data.std)]
    )  # no crop: the whole image, as wsolevaluation scores it
    grid.eval()
    maps: dict[str, list[torch.Tensor]] = {name: [] for name in best}
    pictures = []
    for start in range(0, len(ids), ATTENTION_BATCH):
        pil = [load_rgb(root / i) for i in ids[start : start + ATTENTION_BATCH]]
        images = torch.stack([transform(p) for p in pil]).to(device)  # (B, 3, img, img)
        for name, value in head_maps(grid, best, images).items():
            maps[name].append(value)
        if len(pictures) < rows:
            pictures += [np.asarray(p.convert("RGB").resize((img, img))) for p in pil]
    stacked = {name: torch.cat(value).numpy() for name, value in maps.items()}  # (N, h, w) each
    masks = bench_masks(root, ids)
    boxes, sizes = [metadata.boxes[i] for i in ids], [metadata.image_sizes[i] for i in ids]
    scores = {name: attention_quality(value, boxes, sizes, masks) for name, value in stacked.items()}
    if rows == 0:
        return scores, [], {}
    return scores, pictures[:rows], {name: value[:rows] for name, value in stacked.items()}


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
            h.get("MaxBoxAccV2", "-"),
            h.get("mask_mass", "-"),
        )
        for h in result["heads"]
    ]
    header = ("head", "lr", "params", "GFLOPs", "held-out top1", "test top1", "test top5", "MaxBoxAccV2", "mask mass")
    return format_table(rows, header)


def selection_line(result: dict) -> str:
    """The entry the held-out split selected and its test accuracy."""
    selected = result["selected"]
    return (
        f"selected on the held-out split: {selected['head']} lr {selected['lr']:g}: "
        f"test top-1 {selected['test_top1']:.2f}, top-5 {selected['test_top5']:.2f}"
    )


__all__ = [
    "ProbeReport",
    "attention_scores",
    "bench_masks",
    "best_per_head",
    "entry_rows",
    "find_metadata",
    "head_gflops",
    "head_maps",
    "heads_table",
    "probe_report",
    "selection_line",
]
