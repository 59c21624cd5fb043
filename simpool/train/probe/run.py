"""``simpool probe``'s protocol as a recipe: a frozen backbone, a grid of heads x options x learning rates x weight
decays, held-out selection.

1. The training split is divided, seeded, into the part the heads train on and a held-out part
   (``probe.holdout``, 10% by default); the test split (``data.val_split``) is never seen until the end
   (:class:`~.data.ProbeSplits`).
2. Every entry of the grid trains in one pass through :class:`~simpool.train.engine.Engine` (timm's augmentation on the
   training part; or, with ``probe.cache``, no augmentation and the backbone's tokens read from a float16
   memmap written once: :func:`~.data.token_cache`).
3. The entry of the best held-out top-1 is selected (and, per head, its best setting); then the top-1/top-5 of
   every entry on every test set is measured, with each head's parameters and GFLOPs, the BG-gap where the IN-9
   variants are test sets, and the k-NN row on the linear head's features (:mod:`.report`). A held-out part or
   test set with more than half its images unreadable fails the run.
4. When the test split has boxes (wsolevaluation metadata, e.g. ``simpool bench export --format wsol``), and
   masks (its ``masks.txt``), each head's attention is scored (MaxBoxAccV2; PxAP and the attention mass in the
   mask: :mod:`simpool.evaluate.attention_quality`) beside the image-independent baselines (uniform, centre,
   the training split's box prior, each head's mean map: :mod:`.attention`).

The run folder (``train.output/train.name``) holds ``config.yaml``, ``log.csv``, ``last.pt`` (exact resume),
``results.json`` (atomic), ``probe.png`` and ``attention.png``, ``robustness.png`` (several test sets),
``attention_maps.npz`` (each head's maps on the scored test images), ``heads/<label>.safetensors`` (each head at
its selected setting with its config: :func:`~.saved.load_head`), and ``tokens.f16`` with ``probe.cache``.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from timm.scheduler import create_scheduler_v2
from torch import nn
from torch.utils.data import DataLoader

from ...data.datasets import StepSampler, check_skipped, collate_skip
from ...data.token_cache import TokenCache
from ...models.loading import load_model, set_image_size
from ...utils import write_json
from ...visualize.probe import probe_figures
from ...visualize.robustness import robustness_figure
from ..distributed import DistInfo, run_together
from ..engine import Engine, configure_backends
from ..launch import launch
from ..recipe import Loop, Parts, Recipe
from ..schedule import Schedule
from .attention import save_attention
from .config import ProbeConfig, blocks_of, check_config, resolved_lrs
from .data import CachedRows, ProbeSplits, Rows, cached_batches, cached_loader, collate_tokens, eval_loader, token_cache
from .fewshot import few_shot
from .grid import FrozenBackbone, ProbeGrid, build_grid, evaluate_grid, grid_step
from .optim import build_optimizer
from .report import knn_row, probe_report, result_rows
from .saved import save_heads


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
    set_image_size(model, config.data.img_size)
    return FrozenBackbone(model.to(device), blocks_of(config.probe), config.probe.blocks_mode)


@torch.no_grad()
def kept_tokens(grid: ProbeGrid, batches: Iterable, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(tokens (B, T, C), labels (B,))`` of every batch of ``(inputs, labels)``, on the host, as the heads read them
    (:meth:`~.grid.ProbeGrid.tokens`): evaluating on them gives what evaluating on ``batches`` gives. They take
    ``images x T x C`` floats of host memory."""
    grid.eval()
    return [(grid.tokens(inputs.to(device)).cpu(), labels) for inputs, labels in batches if len(labels)]


@dataclass
class Reused:
    """What every few-shot try takes from the full run: the frozen backbone, the splits, the token cache (or
    ``None``), and this process's shard of the held-out part's and every test set's tokens (:func:`kept_tokens`)."""

    backbone: FrozenBackbone
    splits: ProbeSplits
    cache: TokenCache | None
    held: list
    tests: dict[str, list]


class ProbeRecipe(Recipe):
    """``simpool probe``: train every head x lr of a grid over a frozen backbone, then select and score them.

    :meth:`run` trains through the engine, then evaluates: rank 0 writes ``results.json`` and the figures.
    """

    name = "probe"

    def __init__(self, config: ProbeConfig, rows: np.ndarray | None = None, reused: Reused | None = None):
        """``rows``: train on these rows of the training part only (a few-shot subset), the global batch at most
        their number; ``reused``: the full run's backbone, splits, cache and evaluation tokens (a few-shot try)."""
        check_config(config)
        self.config, self.rows, self.reused, self.kept = config, rows, reused, None
        self.loop = Loop.from_config(config.train)
        self.run_dir = Path(config.train.output) / (config.train.name or f"probe-{config.model.name}")

    def batch_size(self, info: DistInfo) -> int:
        """``train.batch_size``, or for a few-shot subset at most its size (a multiple of the processes)."""
        batch = self.config.train.batch_size
        if self.rows is not None:
            batch = max(min(batch, len(self.rows) // info.world_size * info.world_size), info.world_size)
        if batch % info.world_size:
            raise ValueError(f"batch size {batch} is not divisible by the {info.world_size} processes")
        return batch

    # ------------------------------------------------------------------------------------------------ training
    def build(self, info: DistInfo) -> Parts:
        config, run, settings = self.config, self.config.train, self.config.probe
        batch = self.batch_size(info)
        self.info, self.micro, self.started = info, batch // info.world_size, time.perf_counter()
        if run.num_threads:
            torch.set_num_threads(run.num_threads)
        configure_backends(info.device, run.tf32)
        torch.manual_seed(run.seed)  # the same heads on every process
        if self.reused is None:
            backbone, self.splits = frozen_backbone(config, info.device), ProbeSplits.load(config)
        else:
            backbone, self.splits = self.reused.backbone, self.reused.splits
        if self.rows is not None:
            self.splits = dataclasses.replace(self.splits, fit_rows=self.rows)
        self.grid = build_grid(
            backbone,
            settings.heads,
            resolved_lrs(settings),
            len(self.splits.classes),
            config.data.img_size,
            settings.with_cls,
            settings.head_kwargs,
            settings.weight_decays,
            seed=run.seed,
        )
        self.sampler = StepSampler(len(self.splits.fit_rows), batch, info.rank, info.world_size, run.seed)
        self.cache, self.train_loader = None, None
        workers, pin = config.data.num_workers, info.device.type == "cuda"
        if settings.cache:
            reused, path = self.reused, self.run_dir / "tokens.f16"
            self.cache = reused.cache if reused else token_cache(config, path, self.grid, self.splits.plain, info)
            self.train_loader = cached_loader(self.cache, self.splits.fit_rows, self.sampler, self.micro, workers, pin)
        else:
            self.train_loader = DataLoader(
                Rows(self.splits.train, self.splits.fit_rows),
                self.micro,
                sampler=self.sampler,
                collate_fn=collate_skip,
                num_workers=workers,
                pin_memory=pin,
            )
        optimizer = build_optimizer(self.grid, settings.opt, batch, settings.momentum)
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
            return cached_batches(self.train_loader)
        return self.train_loader

    def step(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, weight: float):
        return grid_step(model, inputs, targets, self.info.device)

    # ------------------------------------------------------------------------------------------------ evaluation
    def plain_rows(self, rows):
        """``(inputs, labels)`` of this process's shard of the training split's ``rows``: cached tokens, or plain
        images (no augmentation)."""
        workers = self.config.data.num_workers
        if self.cache is not None:
            return eval_loader(CachedRows(self.cache, rows), self.micro, self.info, collate_tokens, workers)
        loader = eval_loader(Rows(self.splits.plain, rows), self.micro, self.info, collate_skip, workers)
        return ((inputs, labels) for inputs, labels, _ in loader)

    def test(self, dataset):
        """``(images, labels)`` of this process's shard of a test set."""
        return eval_loader(dataset, self.micro, self.info, dataset.collate_fn, self.config.data.num_workers)

    def evaluation_batches(self) -> tuple[Iterable, dict[str, Iterable]]:
        """``(inputs, labels)`` batches of this process's shard of the held-out part and of every test set: a
        few-shot try's are the full run's tokens (:class:`Reused`); with ``probe.shots`` the full run keeps its
        tokens (:func:`kept_tokens`, in ``self.kept``) for the tries, so they go through the backbone once."""
        if self.reused is not None:
            return self.reused.held, self.reused.tests
        held = self.plain_rows(self.splits.held_rows)
        tests = {name: self.test(dataset) for name, dataset in self.splits.tests.items()}
        if not self.config.probe.shots:
            return held, tests
        device = self.info.device
        self.kept = (
            kept_tokens(self.grid, held, device),
            {n: kept_tokens(self.grid, b, device) for n, b in tests.items()},
        )
        return self.kept

    def evaluate(self) -> tuple[dict, dict, dict | None]:
        """The heads' accuracy on the held-out part and on every test set, and the k-NN row (``None`` without it).
        More than half of any of them unreadable fails the run on every process
        (:func:`~simpool.data.datasets.check_skipped`)."""
        grid, device, splits, k = self.grid, self.info.device, self.splits, self.config.probe.knn_k
        held_batches, test_batches = self.evaluation_batches()
        held = evaluate_grid(grid, held_batches, device, features=k > 0)
        tests = {name: evaluate_grid(grid, test_batches[name], device, features=k > 0) for name in splits.tests}
        parts = {"held-out part": (held, len(splits.held_rows))}
        parts.update({f"test set {name}": (tests[name], len(data)) for name, data in splits.tests.items()})
        for name, (scores, total) in parts.items():  # counts summed over processes: every process agrees
            check_skipped(total - scores["count"], total, f"images of the {name}")
        if not k:
            return held, tests, None
        fit = evaluate_grid(grid, self.plain_rows(splits.fit_rows), device, heads=False, features=True, gather=True)
        return held, tests, knn_row(fit, held, tests, k, len(splits.classes))

    def run(self, info: DistInfo, folder=None) -> dict:
        """Train the grid (resumed from ``last.pt`` when the folder has one), then select and score the heads;
        returns the results (``{}`` on processes other than rank 0)."""
        engine = Engine(self, self.loop, info, folder)
        engine.run()
        finished = engine.counters.epoch >= self.config.train.epochs  # False: max_updates stopped it (resumable)
        held, tests, knn = self.evaluate()
        report = probe_report(self.config, self.grid, held, tests, finished, info, knn)  # on every process
        if self.config.probe.shots and finished:
            labels, rows = np.asarray(self.splits.plain.targets), self.splits.fit_rows
            reused = Reused(self.grid.backbone, self.splits, self.cache, *self.kept)
            make = functools.partial(type(self), self.config, reused=reused)  # make(rows): one try's recipe
            report.result["few_shot"] = few_shot(make, self.config, labels, rows, info)
        return self.finish(report, len(tests), info)

    def finish(self, report, num_tests: int, info: DistInfo) -> dict:
        """Rank 0 writes the run's files (:meth:`write_results`); when that fails every process raises, none waits
        at a collective for it. Returns the results (``{}`` on processes other than rank 0)."""
        return run_together(lambda: self.write_results(report, num_tests) if info.is_main else {}, info)

    def write_results(self, report, num_tests: int) -> dict:
        """Rank 0's files: the figures, ``attention_maps.npz``, the heads, ``results.json``; returns the results."""
        attention = report.attention
        pictures, columns = (attention.pictures, attention.columns) if attention else ([], {})
        result = {**report.result, **probe_figures(report.result, pictures, columns, self.run_dir)}
        if num_tests > 1:
            names = [test["name"] for test in report.result["test_sets"]]
            figure = robustness_figure(names, result_rows(report.result), self.run_dir / "robustness.png")
            result["robustness_figure"] = str(figure)
        if attention:
            result["attention_maps"] = str(save_attention(attention, self.run_dir / "attention_maps.npz"))
        best = {row["head"]: row["index"] for row in report.result["heads"]}
        result["head_files"] = save_heads(self.run_dir / "heads", self.config, self.grid, best, self.splits.classes)
        result["wall_s"] = time.perf_counter() - self.started
        write_json(self.run_dir / "results.json", result)
        return result


def probe(config: ProbeConfig) -> dict:
    """Run the protocol (see the module docstring) in ``train.output/train.name`` through
    :func:`~simpool.train.launch.launch`; returns the results plus ``{"run_dir"}``. Resumes from ``last.pt``
    when ``train.resume``."""
    return launch(ProbeRecipe(config), config)


__all__ = ["ProbeRecipe", "Reused", "frozen_backbone", "kept_tokens", "probe"]
