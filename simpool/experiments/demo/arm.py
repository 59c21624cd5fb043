"""One arm of the demo: the bench ViT with its CLS token or with SimPool, trained as a recipe, its curves
measured as it trains."""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ...data.bench import SimPoolBench, normalize_images
from ...train.engine import Engine
from ...train.recipe import Loop, Parts, Recipe
from ...train.schedule import Schedule
from ...utils import warmup_cosine
from .config import DemoConfig, bench_vit
from .scoring import CURVE_VARIANTS, curve_point, curve_steps


class BenchArm(Recipe):
    """Train one model (``kind``: ``cls`` or ``simpool``) on the bench's ``original`` train split.

    One engine epoch of ``steps`` updates over a seeded order of the images (``config.epochs`` passes), AdamW
    with a linear warm-up and a cosine decay, label-smoothed cross-entropy, random horizontal flips. The curve
    points (:func:`~.scoring.curve_steps`) are measured once the model is built (update 0) and after the
    updates they name (:meth:`after_update`); they use no random number, so the trained model is the same with
    or without them. Images drawn more than once (more than one epoch; the curve subset) are rendered once and
    kept in memory: the same uint8 images, so the same model, without rendering each again.
    """

    def __init__(self, kind: str, config: DemoConfig, device: torch.device, progress: bool = True):
        self.kind, self.config, self.device, self.progress = kind, config, device, progress
        self.name = f"train {kind}"
        self.loop = Loop(progress=progress, log_every=10)
        self.losses: list[torch.Tensor] = []  # on the device: read once at the end
        self.curves: list[dict] = []
        self.curve_seconds = 0.0

    def build(self, info) -> Parts:
        config = self.config
        torch.manual_seed(config.seed)
        self.model = bench_vit(self.kind, config).to(self.device)
        data = SimPoolBench("train", "original", config.bench(), num_images=config.train_images)
        self.data = data.rendered(self.progress) if config.epochs > 1 else data  # 614 MB for 50,000 images of 64 px
        self.curve_data = {
            variant: SimPoolBench(config.eval_split, variant, config.bench(), num_images=config.curve_images).rendered()
            for variant in (CURVE_VARIANTS if config.curve_points > 0 else ())
        }
        self.steps = max(1, int(config.epochs * len(self.data) / config.batch_size))
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        schedule = warmup_cosine(optimizer, self.steps, max(1, int(config.warmup * self.steps)))
        self.generator = torch.Generator().manual_seed(config.seed)
        passes = math.ceil(config.epochs) + 1
        self.order = torch.cat([torch.randperm(len(self.data), generator=self.generator) for _ in range(passes)])
        self.measure_at = set(curve_steps(self.steps, config.curve_points))
        self.started = time.perf_counter()
        self.after_update(0)  # the initialisation's point
        return Parts(self.model, optimizer, epochs=1, updates_per_epoch=self.steps, schedule=Schedule(schedule))

    def batches(self, epoch: int, start_update: int):
        size = self.config.batch_size
        for step in range(start_update, self.steps):
            images, labels, _, _ = self.data.batch(self.order[step * size : (step + 1) * size].numpy())
            flip = torch.rand(len(images), 1, 1, 1, generator=self.generator) < 0.5
            images = torch.where(flip, images.flip(-1), images)  # horizontal flip
            yield normalize_images(images), labels, 0

    def step(self, model, images, labels, weight):
        loss = F.cross_entropy(model(images.to(self.device)), labels.to(self.device), label_smoothing=0.1)
        self.losses.append(loss.detach())
        return loss, len(labels)

    def after_update(self, update: int) -> None:
        """The curve point of ``update`` when it is one of ``measure_at``."""
        if update not in self.measure_at:
            return
        start = time.perf_counter()
        point = curve_point(self.kind, self.model, self.config, self.device, update, self.curve_data)
        self.curves.append(point)
        self.model.train()
        if self.progress:  # a long run shows its curves as they grow
            tqdm.write(
                f"{self.kind} update {update} (epoch {point['epoch']:.2f}): "
                f"top-1 original {point['top1_original']:.3f}, mixed_rand {point['top1_mixed_rand']:.3f}; "
                f"MaxBoxAccV2 {point['MaxBoxAccV2']:.1f}, mask mass {point['mask_mass']:.3f}"
            )
        self.curve_seconds += time.perf_counter() - start

    def summary(self, row: dict) -> dict:
        """``{"model", "seconds", "steps", "loss", "curves", "curve_seconds"}`` (``seconds``: training alone,
        ``curve_seconds``: the curve evaluations; ``loss``: the mean of the last 20 updates')."""
        return {
            "model": self.model,
            "seconds": time.perf_counter() - self.started - self.curve_seconds,
            "steps": self.steps,
            "loss": float(torch.stack(self.losses[-20:]).double().mean()),
            "curves": self.curves,
            "curve_seconds": self.curve_seconds,
        }


def train_model(kind: str, config: DemoConfig, device: torch.device, progress: bool = True) -> dict:
    """Train one arm (:class:`BenchArm`) by :class:`~simpool.train.engine.Engine`; returns its summary."""
    arm = BenchArm(kind, config, device, progress)
    return Engine(arm, arm.loop).run()
