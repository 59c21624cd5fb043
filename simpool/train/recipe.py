"""What a training is, to the engine: a :class:`Recipe` says what a step is, :class:`Loop` how steps run.

A recipe is an object with five methods (the engine calls them in this order)::

    build(info) -> Parts                      # the model, its optimizer, schedule, EMA; once, before training
    batches(epoch, start_update) -> iterable   # (inputs, targets, skipped) micro-batches of one epoch
    step(model, inputs, targets, weight)       # -> (mean loss, count): the forward pass only
    end_epoch(epoch, row, model)               # validation, monitors, weights; adds numbers to row
    summary(row) -> dict                       # the run's result, after the last epoch

and three optional hooks around each optimizer update (``before_update``, ``before_optimizer_step``,
``after_update``; DINO uses all three). ``epoch_line(row)`` is the line printed after each epoch.
Everything else, the loop, precision, accumulation, DDP, checkpoints and resume, belongs to
:class:`~simpool.train.engine.Engine`, and starting a run (lock, signals, errors) to
:func:`~simpool.train.launch.launch`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .distributed import DistInfo
from .engine import Engine, Loop, Parts


class Recipe:
    """The base of every training: override :meth:`build`, :meth:`batches` and :meth:`step`; the rest are
    optional. ``name`` labels the progress bar; ``config`` (the resolved config dataclass, or None) is what a
    resume checks against the run folder's ``config.yaml``; ``loop`` holds the engine's settings and
    ``run_dir`` the run folder that :func:`~simpool.train.launch.launch` locks."""

    name: str = "train"
    config: Any = None
    loop: Loop = Loop()
    run_dir: Path | None = None  # where :func:`~simpool.train.launch.launch` locks and keeps the run
    folder: Any = None  # the run folder (:class:`~simpool.train.run.RunFolder`) while :meth:`run` trains

    def run(self, info: DistInfo, folder: Any = None) -> dict:
        """Train with :class:`~simpool.train.engine.Engine` (what :func:`~simpool.train.launch.launch` calls)."""
        self.folder = folder  # where end_epoch may write weights (None: a run that keeps nothing on disk)
        return Engine(self, self.loop, info, folder).run()

    def build(self, info: DistInfo) -> Parts:
        raise NotImplementedError

    def batches(self, epoch: int, start_update: int) -> Iterable:
        """``(inputs, targets, skipped)`` micro-batches of ``epoch``, from update ``start_update`` on (a resume)."""
        raise NotImplementedError

    def step(self, model: nn.Module, inputs: Any, targets: torch.Tensor, weight: float) -> tuple[torch.Tensor, int]:
        """``(mean loss, count)``; ``weight`` is 1.0, or 0.0 for the stand-in of an empty micro-batch under DDP
        (a step with side effects, such as DINO's centre, scales them by it)."""
        raise NotImplementedError

    def end_epoch(self, epoch: int, row: dict, model: nn.Module) -> None:
        """At each epoch end, before the state is saved; ``model`` is the trained one as the engine runs it
        (in DDP, compiled). Numbers added to ``row`` go to the log."""

    def summary(self, row: dict) -> dict:
        """The run's result from the last log row."""
        return dict(row)

    def epoch_line(self, row: dict) -> str | None:
        """One line printed after each epoch (rank 0), or None."""
        return None

    def before_update(self, update: int) -> None:
        """Before the first micro-batch of update ``update`` (counted from 0)."""

    def before_optimizer_step(self) -> None:
        """After the gradients are unscaled and clipped, before ``optimizer.step``."""

    def after_update(self, update: int) -> None:
        """After update ``update`` (counted from 1), its schedule and EMA steps."""


class CrossEntropyRecipe(Recipe):
    """The smallest concrete recipe: cross-entropy of a classifier on fixed ``(inputs, targets, skipped)``
    micro-batches, the same ones every epoch (a resumed epoch skips its first ``start_update``). For
    benchmarks, checks and tests of the engine.

    Args:
        model: a classifier ``(B, ...) -> (B, K)``.
        optimizer: its optimizer.
        micro_batches: the list of ``(inputs, targets, skipped)`` of every epoch.
        **parts: more :class:`Parts` fields (``epochs``, ``schedule``, ``clip_grad``...); ``updates_per_epoch``
            defaults to the number of micro-batches.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, micro_batches: list, **parts):
        self.model, self.optimizer, self.micro_batches = model, optimizer, micro_batches
        self.parts = {"updates_per_epoch": len(micro_batches), **parts}

    def build(self, info: DistInfo) -> Parts:
        return Parts(self.model, self.optimizer, **self.parts)

    def batches(self, epoch: int, start_update: int) -> Iterable:
        return iter(self.micro_batches[start_update:])

    def step(self, model: nn.Module, inputs: Any, targets: torch.Tensor, weight: float) -> tuple[torch.Tensor, int]:
        return nn.functional.cross_entropy(model(inputs), targets.to(inputs.device)), len(targets)


__all__ = ["CrossEntropyRecipe", "Loop", "Parts", "Recipe"]
