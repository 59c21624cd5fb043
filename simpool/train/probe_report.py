"""What ``simpool probe`` reports once its grid is trained: every entry's accuracy, parameters and GFLOPs, each
head's selected lr (best held-out top-1), the selection, each head's attention quality on a test split with
boxes (and masks: a bench export), and the figures ``probe.png`` and ``attention.png``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torchvision import transforms

from ..analysis.resources import count_flops, count_parameters
from ..data.folders import load_rgb
from ..data.wsol import read_wsol_metadata
from ..evaluate.attention_quality import attention_quality
from ..models.attention import attention_maps
from ..visualize.probe import accuracy_figure, attention_figure
from .probe_config import ProbeConfig, resolved_lrs
from .run import RunFolder


def probe_results(config: ProbeConfig, grid, held: dict, test: dict, device, folder: RunFolder, finished: bool):
    """The table of every entry, each head's best lr, the selection, attention scores and figures."""
    img = config.data.img_size
    images = torch.zeros(1, 3, img, img, device=device)
    tokens = grid.tokens(images)  # (1, T, C)
    backbone_flops = count_flops(grid.backbone, images)
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
    # per head: the lr of the best held-out top-1 (the first of equals); overall: the best of those
    best = {}
    for index, entry in enumerate(entries):
        if entry["head"] not in best or entry["holdout_top1"] > entries[best[entry["head"]]]["holdout_top1"]:
            best[entry["head"]] = index
    per_head = [{**entries[index], "index": index} for index in best.values()]
    selected = max(per_head, key=lambda e: e["holdout_top1"])
    scores, figure_maps = attention_scores(config, grid, best, device)
    for row in per_head:
        row.update(scores.get(row["head"], {}))
    settings = config.probe
    result = {
        "finished": finished,
        "backbone": {
            "model": config.model.name,
            "checkpoint": config.model.checkpoint,
            "params": count_parameters(grid.backbone),
            "gflops": backbone_flops / 1e9,
            "tokens": list(tokens.shape[1:]),
        },
        "settings": {
            "heads": list(settings.heads),
            "lrs": resolved_lrs(settings),
            "opt": settings.opt,
            "epochs": config.train.epochs,
            "batch_size": config.train.batch_size,
            "holdout": settings.holdout,
            "cache": settings.cache,
            "blocks": settings.blocks,
            "blocks_mode": settings.blocks_mode,
            "with_cls": settings.with_cls,
            "seed": config.train.seed,
        },  # fmt: skip
        "num_holdout": held["count"],
        "num_test": test["count"],
        "entries": entries,
        "heads": per_head,
        "selected": {key: selected[key] for key in ("head", "lr", "holdout_top1", "test_top1", "test_top5")},
    }
    result["figure"] = str(accuracy_figure(per_head, folder.path / "probe.png"))
    if figure_maps is not None:
        result["attention_figure"] = str(attention_figure(*figure_maps, folder.path / "attention.png"))
    return result


def head_gflops(head, tokens: torch.Tensor) -> float:
    """GFLOPs of one head on one image's tokens ``(1, T, C)``. Its parameters are frozen while counting: the
    counter's module hooks cannot follow a parameter handed as is to a submodule (a learned query) without grad."""
    flags = [p.requires_grad for p in head.parameters()]
    head.requires_grad_(False)
    try:
        return count_flops(head, tokens) / 1e9
    finally:
        for param, flag in zip(head.parameters(), flags, strict=True):
            param.requires_grad_(flag)


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
    from ..data.bench import BenchConfig, SimPoolBench

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


@torch.no_grad()
def attention_scores(config: ProbeConfig, grid, best: dict[str, int], device) -> tuple[dict, tuple | None]:
    """Each head's (at its selected lr) MaxBoxAccV2 and mask mass on the test images with boxes, and the rows of
    ``attention.png``; ``({}, None)`` when the test split has no box metadata. ``linear``'s map is the backbone's
    CLS attention in its last block (uniform without a CLS token)."""
    metadata_dir = find_metadata(config)
    if metadata_dir is None:
        return {}, None
    metadata = read_wsol_metadata(metadata_dir)
    ids = [i for i in metadata.image_ids if i in metadata.boxes]
    ids = ids[: config.probe.attention_images or None]
    root, img = Path(config.data.root), config.data.img_size
    transform = transforms.Compose(
        [transforms.Resize((img, img)), transforms.ToTensor(), transforms.Normalize(config.data.mean, config.data.std)]
    )  # no crop: the whole image, as wsolevaluation scores it
    grid.eval()
    maps = {name: [] for name in best}
    pictures = []
    for start in range(0, len(ids), 32):
        pil = [load_rgb(root / i) for i in ids[start : start + 32]]
        images = torch.stack([transform(p) for p in pil]).to(device)  # (B, 3, img, img)
        tokens = grid.tokens(images)  # (B, T, C)
        h, w = grid.backbone.grid
        for name, index in best.items():
            attention = grid.heads[index].attention(tokens)  # (B, N) or None
            if attention is None:
                if grid.backbone.num_prefix_tokens and hasattr(grid.backbone.model, "blocks"):
                    attention = attention_maps(grid.backbone.model, images, source="cls").flatten(1)
                else:
                    attention = torch.ones(len(images), h * w, device=device)
            maps[name].append(attention.float().reshape(-1, h, w).cpu())  # (B, h, w)
        if len(pictures) < config.probe.figure_images:
            pictures += [np.asarray(p.convert("RGB").resize((img, img))) for p in pil]
    maps = {name: torch.cat(value).numpy() for name, value in maps.items()}
    masks = bench_masks(root, ids)
    scores = {
        name: attention_quality(value, [metadata.boxes[i] for i in ids], [metadata.image_sizes[i] for i in ids], masks)
        for name, value in maps.items()
    }
    rows = config.probe.figure_images
    if rows == 0:
        return scores, None
    return scores, (pictures[:rows], {name: value[:rows] for name, value in maps.items()})


__all__ = ["attention_scores", "bench_masks", "find_metadata", "head_gflops", "probe_results"]
