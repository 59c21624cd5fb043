"""Train one backbone with each pool under one budget and seed, and rank the pools.

The CPU-sized analogue of the paper's Figure 3 (Section 4.2), run by ``simpool tournament``: every run
sees the same images in the same order from the same initial backbone weights; only the pool differs.
After each run the folder gets ``results.csv`` and ``results.md`` (ranked), written atomically, so an
interrupted tournament keeps what it measured and resumes where it stopped; ``results.png`` (bars grouped
by Table 1 group, in the style of Figure 3) is drawn when the runs end.
A pool that fails is reported in the table and the others go on.

A pool is a registry name, optionally with arguments: ``framework:attention=sigmoid`` or
``gem:p=3,learnable=false`` (values parsed as YAML scalars), so Table 10 ablations run as entrants.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..pooling.framework import components_of
from ..pooling.registry import list_pools, pool_constructor
from ..train.engine import Engine
from ..utils import atomic_write_bytes, default_device, parse_kv, warmup_cosine, write_json

FIELDS = ("rank", "pool", "method", "group", "status", "accuracy", "final_loss", "pool_params", "seconds", "error")
DEFAULT_POOLS = (
    *("gap", "max", "gap_max", "gem", "lse", "how"),  # group 1
    *("kmeans", "otk", "slot"),  # group 2
    *("se", "cbam", "ge"),  # group 3
    *("vit", "cait"),  # group 4
    "simpool",  # group 5
)


@dataclass(frozen=True)
class TournamentConfig:
    """One budget for every entrant.

    Attributes:
        model: "tiny_vit" (4 blocks of width 96, 8x8 patches), "tiny_resnet" (timm ``resnet10t``
            with output stride 8), or any ``simpool.create_model`` name.
        dataset: a key of ``DATASETS``: "bench" (the SimPool bench, ``original`` variant) or "fashion-mnist".
        steps: optimisation steps per run.
        batch_size: images per step.
        lr: AdamW learning rate (cosine schedule, 5% warm-up).
        weight_decay: AdamW weight decay.
        seed: seed of the backbone initialisation, the data order and the bench.
        image_size: bench image side (Fashion-MNIST is 28).
        train_images, test_images: images used for training and for the accuracy.
        depth: blocks of ``tiny_vit``.
    """

    model: str = "tiny_vit"
    dataset: str = "bench"
    steps: int = 300
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    seed: int = 0
    image_size: int = 32
    train_images: int = 5000
    test_images: int = 1000
    depth: int = 4


def _bench(split: str, count: int, config: TournamentConfig) -> tuple[torch.Tensor, torch.Tensor]:
    from ..data.bench import BenchConfig, SimPoolBench, normalize_images

    data = SimPoolBench(split, "original", BenchConfig(image_size=config.image_size, seed=config.seed), count)
    images, labels, _, _ = data.batch(range(len(data)))  # (B, 3, S, S) uint8
    return normalize_images(images), labels.long()


def _fashion_mnist(split: str, count: int, config: TournamentConfig) -> tuple[torch.Tensor, torch.Tensor]:
    from ..data.fashion_mnist import load_fashion_mnist

    images, labels = load_fashion_mnist("train" if split == "train" else "test")
    images = torch.from_numpy(images[:count]).float().div_(255.0).sub_(0.286).div_(0.353)[:, None]  # (B, 1, 28, 28)
    return images, torch.from_numpy(labels[:count]).long()


# name -> (split, count, config) -> (images (B, C, S, S) float, labels (B,) long)
DATASETS: dict[str, Callable[[str, int, TournamentConfig], tuple[torch.Tensor, torch.Tensor]]] = {
    "bench": _bench,
    "fashion-mnist": _fashion_mnist,
}


def parse_pool(spec: str) -> tuple[str, dict]:
    """``"name:key=value,key=value"`` -> ``(name, kwargs)``; values are YAML scalars."""
    name, _, arguments = spec.partition(":")
    if name not in list_pools():
        raise ValueError(f"unknown pool {name!r} in {spec!r}; valid pools: {', '.join(list_pools())}")
    try:
        return name, parse_kv(filter(None, arguments.split(",")))
    except ValueError as error:
        raise ValueError(f"pool {spec!r}: {error}") from None


def build_model(config: TournamentConfig, pool: str, pool_kwargs: dict, in_chans: int, image_size: int, classes: int):
    """The backbone with ``pool``, initialised from ``config.seed`` so every entrant starts alike."""
    from ..models import create_model

    torch.manual_seed(config.seed)
    if config.model == "tiny_vit":
        patch = next(p for p in (image_size // 8, 4, 2, 1) if p and image_size % p == 0)  # about 8x8 patches
        vit = dict(img_size=image_size, patch_size=patch, in_chans=in_chans, embed_dim=96)
        vit.update(depth=config.depth, num_heads=4, mlp_ratio=2.0)
        return create_model("vit_tiny_patch16_224", pool, pool_kwargs, num_classes=classes, **vit)
    if config.model == "tiny_resnet":
        return create_model("resnet10t", pool, pool_kwargs, num_classes=classes, in_chans=in_chans, output_stride=8)
    return create_model(config.model, pool, pool_kwargs, num_classes=classes, in_chans=in_chans)


def train_and_evaluate(
    config: TournamentConfig, spec: str, data: dict, device: torch.device, progress: bool = False
) -> dict:
    """Train the backbone with the pool ``spec``; returns accuracy, final loss, pool parameters and seconds."""
    from ..models import pool_slot

    name, kwargs = parse_pool(spec)
    train_x, train_y = data["train"]
    test_x, test_y = data["test"]
    model = build_model(config, name, kwargs, train_x.shape[1], train_x.shape[-1], int(train_y.max()) + 1).to(device)
    slot = pool_slot(model)
    pool_params = sum(p.numel() for p in slot.parameters()) if slot is not None else 0
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = warmup_cosine(optimizer, config.steps, max(1, config.steps // 20))
    generator = torch.Generator().manual_seed(config.seed)
    epochs = math.ceil(config.steps * config.batch_size / len(train_x)) + 1
    order = torch.cat([torch.randperm(len(train_x), generator=generator) for _ in range(epochs)])

    def batches(epoch: int, start_update: int):
        for step in range(start_update, config.steps):
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            yield train_x[index], train_y[index], 0

    def step(model, images, labels, weight):
        return F.cross_entropy(model(images.to(device)), labels.to(device)), len(labels)

    # the loss is read (and checked finite, so that a diverging pool fails) every 10 steps and at the end
    engine = Engine(model, optimizer, step, scheduler=schedule, desc=spec, progress=progress, log_every=10)
    start = time.perf_counter()
    engine.fit(batches, epochs=1, updates_per_epoch=config.steps)
    loss = engine.last_loss
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(test_x), 256):
            correct += (model(test_x[i : i + 256].to(device)).argmax(-1).cpu() == test_y[i : i + 256]).sum().item()
    return {
        "accuracy": 100.0 * correct / len(test_x),
        "final_loss": loss,
        "pool_params": pool_params,
        "seconds": time.perf_counter() - start,
    }


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
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def _read_previous(out_dir: Path) -> dict[str, dict]:
    path = out_dir / "results.csv"
    if not path.exists():
        return {}
    with path.open(newline="") as file:
        return {row["pool"]: row for row in csv.DictReader(file)}


def run_tournament(
    pools: list[str],
    out_dir: str | Path,
    config: TournamentConfig = TournamentConfig(),
    device: torch.device | None = None,
    progress: bool = True,
) -> list[dict]:
    """Train each pool, writing the ranked results after every run; skips pools already done in ``out_dir``.

    Raises:
        ValueError: an unknown pool or dataset, or ``out_dir`` holds a tournament with another config.
    """
    for spec in pools:
        parse_pool(spec)
    if config.dataset not in DATASETS:
        raise ValueError(f"unknown dataset {config.dataset!r}; valid: {', '.join(DATASETS)}")
    out_dir = Path(out_dir)
    settings = asdict(config)
    config_path = out_dir / "config.json"
    if config_path.exists():
        import json

        previous = json.loads(config_path.read_text())
        if previous != settings:
            raise ValueError(f"{out_dir} holds a tournament with another config {previous}; use a new folder")
    write_json(config_path, settings)
    device = device or default_device()
    results = {p: row for p, row in _read_previous(out_dir).items() if row["status"] == "ok"}
    todo = [spec for spec in pools if spec not in results]
    data = {}
    if todo:
        load = DATASETS[config.dataset]
        data = {"train": load("train", config.train_images, config), "test": load("test", config.test_images, config)}
    for spec in tqdm(pools, desc="tournament", disable=not progress, unit="run"):
        if spec in results:
            continue
        name, _ = parse_pool(spec)
        components = components_of(name, pool_constructor(name))
        row = {"pool": spec, "method": components.method if components else name}
        row["group"] = components.group if components else "?"
        try:
            row.update(train_and_evaluate(config, spec, data, device, progress), status="ok", error="")
        except Exception as error:  # a failed entrant is reported, the others go on
            row.update(status="failed", error=f"{type(error).__name__}: {error}".replace("\n", " ")[:200])
            row.update(accuracy="", final_loss="", pool_params="", seconds="")
        results[spec] = row
        _write_tables(out_dir, rank(list(results.values())))
    ranked = rank([results[spec] for spec in pools])
    _write_tables(out_dir, ranked)
    plot(ranked, out_dir / "results.png", _title(config))
    return ranked


def _title(config: TournamentConfig) -> str:
    return f"{config.model} on {config.dataset}, {config.steps} steps x {config.batch_size}, seed {config.seed}"


def _write_tables(out_dir: Path, rows: list[dict]) -> None:
    atomic_write_bytes(out_dir / "results.csv", to_csv(rows).encode())
    atomic_write_bytes(out_dir / "results.md", to_markdown(rows).encode())
