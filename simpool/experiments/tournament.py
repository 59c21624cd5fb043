"""Train one backbone with each pool under one budget and seed, and rank the pools.

The CPU-sized analogue of the paper's Figure 3 (Section 4.2), run by ``simpool tournament``: every run
sees the same images in the same order from the same initial backbone weights; only the pool differs.
Each entrant is an :class:`Entrant` recipe run by :class:`~simpool.train.engine.Engine`; the whole
:class:`Tournament` is run by :func:`~simpool.train.launch.launch`, which locks the output folder.
After each run the folder gets ``results.csv`` and ``results.md`` (ranked), written atomically, so an
interrupted tournament keeps what it measured and resumes where it stopped; ``results.png`` (bars grouped
by Table 1 group, in the style of Figure 3) is drawn when the runs end
(:mod:`~simpool.experiments.tournament_report`). A pool that fails is reported in the table and the others go on.

A pool is a registry name, optionally with arguments: ``framework:attention=sigmoid`` or
``gem:p=3,learnable=false`` (values parsed as YAML scalars), so Table 10 ablations run as entrants.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..pooling.framework import components_of
from ..pooling.registry import list_pools, pool_constructor
from ..train.engine import Engine
from ..train.launch import launch
from ..train.recipe import Loop, Parts, Recipe
from ..train.schedule import Schedule
from ..utils import default_device, parse_kv, warmup_cosine, write_json
from .tournament_report import plot, rank, read_previous, write_tables

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

    BOUNDS: ClassVar[dict[str, str]] = dict.fromkeys(  # checked by simpool.train.config.from_dict
        ("steps", "batch_size", "image_size", "train_images", "test_images", "depth"), "[1, inf)"
    )


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


class Entrant(Recipe):
    """One entrant: the backbone with the pool ``spec`` trained ``config.steps`` updates (AdamW, 5% warm-up and
    a cosine decay, cross-entropy) over a seeded order of the training images, then scored on the test images.

    ``data`` is ``{"train": (images, labels), "test": (images, labels)}``. The loss is read (and checked
    finite, so that a diverging pool fails) every 10 updates and at the end.
    """

    def __init__(self, config: TournamentConfig, spec: str, data: dict, device: torch.device, progress: bool = False):
        self.config, self.spec, self.data, self.device = config, spec, data, device
        self.name = spec
        self.loop = Loop(progress=progress, log_every=10)
        self.last_loss: torch.Tensor | None = None

    def build(self, info) -> Parts:
        from ..models import pool_slot

        name, kwargs = parse_pool(self.spec)
        train_x, train_y = self.data["train"]
        shape = (train_x.shape[1], train_x.shape[-1], int(train_y.max()) + 1)  # channels, side, classes
        self.model = build_model(self.config, name, kwargs, *shape).to(self.device)
        slot = pool_slot(self.model)
        self.pool_params = sum(p.numel() for p in slot.parameters()) if slot is not None else 0
        config = self.config
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        schedule = warmup_cosine(optimizer, config.steps, max(1, config.steps // 20))
        generator = torch.Generator().manual_seed(config.seed)
        passes = math.ceil(config.steps * config.batch_size / len(train_x)) + 1
        self.order = torch.cat([torch.randperm(len(train_x), generator=generator) for _ in range(passes)])
        self.started = time.perf_counter()
        return Parts(self.model, optimizer, epochs=1, updates_per_epoch=config.steps, schedule=Schedule(schedule))

    def batches(self, epoch: int, start_update: int):
        train_x, train_y = self.data["train"]
        size = self.config.batch_size
        for step in range(start_update, self.config.steps):
            index = self.order[step * size : (step + 1) * size]
            yield train_x[index], train_y[index], 0

    def step(self, model, images, labels, weight):
        loss = F.cross_entropy(model(images.to(self.device)), labels.to(self.device))
        self.last_loss = loss.detach()
        return loss, len(labels)

    @torch.no_grad()
    def summary(self, row: dict) -> dict:
        """``{"accuracy"}`` (percent of the test images), ``final_loss`` (the last update's), ``pool_params``,
        ``seconds`` (training and scoring)."""
        test_x, test_y = self.data["test"]
        self.model.eval()
        correct = 0
        for i in range(0, len(test_x), 256):
            correct += (
                (self.model(test_x[i : i + 256].to(self.device)).argmax(-1).cpu() == test_y[i : i + 256]).sum().item()
            )
        return {
            "accuracy": 100.0 * correct / len(test_x),
            "final_loss": float(self.last_loss),
            "pool_params": self.pool_params,
            "seconds": time.perf_counter() - self.started,
        }


def train_and_evaluate(
    config: TournamentConfig, spec: str, data: dict, device: torch.device, progress: bool = False
) -> dict:
    """Train the backbone with the pool ``spec`` (:class:`Entrant`); returns accuracy, final loss, pool
    parameters and seconds."""
    entrant = Entrant(config, spec, data, device, progress)
    return Engine(entrant, entrant.loop).run()


class Tournament:
    """Every pool of ``pools`` as an :class:`Entrant`, the ranked tables written to ``run_dir`` after each;
    pools already done there are kept and skipped (what :func:`~simpool.train.launch.launch` runs).

    Raises:
        ValueError: an unknown pool or dataset.
    """

    def __init__(self, pools: list[str], run_dir: str | Path, config: TournamentConfig, device, progress: bool = True):
        for spec in pools:
            parse_pool(spec)
        if config.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {config.dataset!r}; valid: {', '.join(DATASETS)}")
        self.pools, self.run_dir, self.config = list(pools), Path(run_dir), config
        self.device, self.progress = device, progress

    def run(self, info=None, folder=None) -> dict:
        """``{"rows": the ranked rows}``.

        Raises:
            ValueError: ``run_dir`` holds a tournament with another config.
        """
        self.check_config()
        results = {p: row for p, row in read_previous(self.run_dir).items() if row["status"] == "ok"}
        todo = [spec for spec in self.pools if spec not in results]
        data = {}
        if todo:
            load, config = DATASETS[self.config.dataset], self.config
            data = {
                "train": load("train", config.train_images, config),
                "test": load("test", config.test_images, config),
            }
        for spec in tqdm(todo, desc="tournament", disable=not self.progress, unit="run"):
            results[spec] = self.play(spec, data)
            write_tables(self.run_dir, rank(list(results.values())))
        ranked = rank([results[spec] for spec in self.pools])
        write_tables(self.run_dir, ranked)
        plot(ranked, self.run_dir / "results.png", self.title())
        return {"rows": ranked}

    def check_config(self) -> None:
        """Refuse a folder that holds another config's tournament, then record this one (``config.json``)."""
        settings, path = asdict(self.config), self.run_dir / "config.json"
        if path.exists():
            previous = json.loads(path.read_text())
            if previous != settings:
                raise ValueError(f"{self.run_dir} holds a tournament with another config {previous}; use a new folder")
        write_json(path, settings)

    def play(self, spec: str, data: dict) -> dict:
        """The row of one entrant: its scores, or ``failed`` with the error (the others go on)."""
        name, _ = parse_pool(spec)
        components = components_of(name, pool_constructor(name))
        row = {"pool": spec, "method": components.method if components else name}
        row["group"] = components.group if components else "?"
        try:
            row.update(train_and_evaluate(self.config, spec, data, self.device, self.progress), status="ok", error="")
        except Exception as error:  # a failed entrant is reported, the others go on
            row.update(status="failed", error=f"{type(error).__name__}: {error}".replace("\n", " ")[:200])
            row.update(accuracy="", final_loss="", pool_params="", seconds="")
        return row

    def title(self) -> str:
        config = self.config
        return f"{config.model} on {config.dataset}, {config.steps} steps x {config.batch_size}, seed {config.seed}"


def run_tournament(
    pools: list[str],
    out_dir: str | Path,
    config: TournamentConfig = TournamentConfig(),
    device: torch.device | None = None,
    progress: bool = True,
) -> list[dict]:
    """Launch the :class:`Tournament` of ``pools`` in ``out_dir`` (locked while it runs); the ranked rows.

    Raises:
        ValueError: an unknown pool or dataset, ``out_dir`` holds a tournament with another config, or it is
            locked by a live run.
    """
    return launch(Tournament(pools, out_dir, config, device or default_device(), progress))["rows"]
