"""``simpool probe``'s protocol as a recipe: a frozen backbone, a grid of heads x learning rates, held-out selection.

1. The training split is divided, seeded, into the part the heads train on and a held-out part
   (``probe.holdout``, 10% by default); the test split (``data.val_split``) is never seen until the end
   (:class:`~.data.ProbeSplits`).
2. Every head x lr trains in one pass through :class:`~simpool.train.engine.Engine` (timm's augmentation on the
   training part; or, with ``probe.cache``, no augmentation and the backbone's tokens read from a float16
   memmap written once: :func:`~.data.token_cache`).
3. The head x lr of the best held-out top-1 is selected (and, per head, its best lr); then the test top-1/top-5
   of every entry is measured, with each head's parameters and GFLOPs (:mod:`.report`).
4. When the test split has boxes (wsolevaluation metadata, e.g. ``simpool bench export --format wsol``), and
   masks (its ``masks.txt``), each head's attention is scored (MaxBoxAccV2; PxAP and the attention mass in the
   mask: :mod:`simpool.evaluate.attention_quality`) beside the image-independent baselines (uniform, centre,
   the training split's box prior, each head's mean map: :mod:`.attention`).

The run folder (``train.output/train.name``) holds ``config.yaml``, ``log.csv``, ``last.pt`` (exact resume),
``results.json`` (atomic), ``probe.png`` and ``attention.png``, ``attention_maps.npz`` (each head's maps on the
scored test images), and ``tokens.f16`` with ``probe.cache``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from timm.scheduler import create_scheduler_v2
from torch import nn
from torch.utils.data import DataLoader

from ...data.datasets import StepSampler, collate_skip
from ...models.loading import load_model
from ...utils import write_json
from ...visualize.probe import probe_figures
from ..distributed import DistInfo, barrier
from ..engine import Engine, configure_backends
from ..launch import launch
from ..recipe import Loop, Parts, Recipe
from ..schedule import Schedule
from .attention import save_attention
from .config import ProbeConfig, check_config, resolved_lrs
from .data import ProbeSplits, Rows, cached_batches, eval_loader, token_cache
from .grid import FrozenBackbone, build_grid, grid_accuracy, grid_step
from .optim import build_optimizer
from .report import probe_report


def frozen_backbone(config: ProbeConfig, device: torch.device) -> FrozenBackbone:
    """The backbone of ``config.model`` at ``data.img_size`` (a ViT's position embedding resampled), frozen."""
    model = load_model(
        config.model.name,
        pool=config.model.pool,
        pool_kwargs=config.model.pool_kwargs,
        model_kwargs=config.model.kwargs,
        checkpoint=config.model.checkpoint or None,
        checkpoint_key=config.model.checkpoint_key,
    )
    img = config.data.img_size
    size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if size is not None and tuple(size) != (img, img) and hasattr(model, "set_input_size"):
        model.set_input_size(img_size=img)
    return FrozenBackbone(model.to(device), config.probe.blocks, config.probe.blocks_mode)


class ProbeRecipe(Recipe):
    """``simpool probe``: train every head x lr of a grid over a frozen backbone, then select and score them.

    :meth:`run` trains through the engine, then evaluates: rank 0 writes ``results.json`` and the figures.
    """

    name = "probe"

    def __init__(self, config: ProbeConfig):
        check_config(config)
        self.config = config
        self.loop = Loop.from_config(config.train)
        self.run_dir = Path(config.train.output) / (config.train.name or f"probe-{config.model.name}")

    # ------------------------------------------------------------------------------------------------ training
    def build(self, info: DistInfo) -> Parts:
        config, run, settings = self.config, self.config.train, self.config.probe
        if run.batch_size % info.world_size:
            raise ValueError(f"batch size {run.batch_size} is not divisible by the {info.world_size} processes")
        self.info, self.micro, self.started = info, run.batch_size // info.world_size, time.perf_counter()
        if run.num_threads:
            torch.set_num_threads(run.num_threads)
        configure_backends(info.device, run.tf32)
        torch.manual_seed(run.seed)  # the same heads on every process
        backbone = frozen_backbone(config, info.device)
        self.splits = ProbeSplits.load(config)
        self.grid = build_grid(
            backbone,
            settings.heads,
            resolved_lrs(settings),
            len(self.splits.classes),
            config.data.img_size,
            settings.with_cls,
            settings.head_kwargs,
        )
        self.sampler = StepSampler(len(self.splits.fit_rows), run.batch_size, info.rank, info.world_size, run.seed)
        self.cache, self.train_loader = None, None
        if settings.cache:
            self.cache = token_cache(config, self.run_dir / "tokens.f16", self.grid, self.splits.plain, info)
        else:
            self.train_loader = DataLoader(
                Rows(self.splits.train, self.splits.fit_rows),
                self.micro,
                sampler=self.sampler,
                collate_fn=collate_skip,
                num_workers=config.data.num_workers,
                pin_memory=info.device.type == "cuda",
            )
        optimizer = build_optimizer(self.grid, settings.opt, run.batch_size, settings.weight_decay, settings.momentum)
        scheduler, _ = create_scheduler_v2(
            optimizer,
            sched="cosine",
            num_epochs=run.epochs,
            warmup_epochs=settings.warmup_epochs,
            min_lr=0.0,
            step_on_epochs=False,
            updates_per_epoch=self.sampler.updates_per_epoch,
        )
        return Parts(
            self.grid,
            optimizer,
            epochs=run.epochs,
            updates_per_epoch=self.sampler.updates_per_epoch,
            schedule=Schedule(scheduler, on="update"),
            state={"heads": self.grid.heads, "optimizer": optimizer},  # the backbone is the checkpoint's
        )

    def batches(self, epoch: int, start_update: int):
        """The training part's micro-batches: cached tokens, or augmented images through the backbone."""
        self.sampler.set_epoch(epoch, start_update)
        if self.cache is not None:
            return cached_batches(self.cache, self.splits.fit_rows, self.sampler, self.micro)
        return self.train_loader

    def step(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, weight: float):
        return grid_step(model, inputs, targets, self.info.device)

    # ------------------------------------------------------------------------------------------------ evaluation
    def held_out(self):
        """``(inputs, labels)`` of this process's shard of the held-out part (cached tokens or plain images)."""
        shard = self.splits.held_rows[self.info.rank :: self.info.world_size]
        if self.cache is not None:
            return (self.cache[shard[start : start + self.micro]] for start in range(0, len(shard), self.micro))
        dataset = Rows(self.splits.plain, self.splits.held_rows)
        loader = eval_loader(dataset, self.micro, self.info, collate_skip, self.config.data.num_workers)
        return ((inputs, labels) for inputs, labels, _ in loader)

    def test(self):
        """``(images, labels)`` of this process's shard of the test split."""
        test = self.splits.test
        return eval_loader(test, self.micro, self.info, test.collate_fn, self.config.data.num_workers)

    def run(self, info: DistInfo, folder=None) -> dict:
        """Train the grid (resumed from ``last.pt`` when the folder has one), then select and score the heads;
        returns the results (``{}`` on processes other than rank 0)."""
        engine = Engine(self, self.loop, info, folder)
        engine.run()
        finished = engine.counters.epoch >= self.config.train.epochs  # False: max_updates stopped it (resumable)
        held = grid_accuracy(self.grid, self.held_out(), info.device)
        test = grid_accuracy(self.grid, self.test(), info.device)
        result = {}
        if info.is_main:
            report = probe_report(self.config, self.grid, held, test, finished, info.device)
            attention = report.attention
            pictures, columns = (attention.pictures, attention.columns) if attention else ([], {})
            result = {**report.result, **probe_figures(report.result, pictures, columns, self.run_dir)}
            if attention:
                result["attention_maps"] = str(save_attention(attention, self.run_dir / "attention_maps.npz"))
            result["wall_s"] = time.perf_counter() - self.started
            write_json(self.run_dir / "results.json", result)
        barrier()
        return result


def probe(config: ProbeConfig) -> dict:
    """Run the protocol (see the module docstring) in ``train.output/train.name`` through
    :func:`~simpool.train.launch.launch`; returns the results plus ``{"run_dir"}``. Resumes from ``last.pt``
    when ``train.resume``."""
    return launch(ProbeRecipe(config), config)


__all__ = ["ProbeRecipe", "frozen_backbone", "probe"]
