"""The one training loop: every training in simpool (supervised, DINO, fine-tuning, the demo, the tournament,
the linear and segmentation probes) runs through :class:`Engine`.

A recipe supplies what differs: the model, its optimizer and scheduler, the batches of each epoch, and a
step function that computes a loss (the forward pass only)::

    def step(model, inputs, targets, weight) -> (loss, count):   # mean loss over `count` samples

The engine owns the rest, in this order for each optimizer update:

1. ``before_update(update)`` (DINO sets its per-update learning rate and weight decay);
2. for each of ``accum_steps`` micro-batches: ``step`` under autocast (bf16, or fp16 with a ``GradScaler``),
   ``backward`` of ``loss / accum_steps`` (DDP's all-reduce only on the last micro-batch, ``no_sync`` before);
3. ``unscale_`` then clipping (``clip_mode``: the global norm as timm, or each tensor as DINO), then
   ``before_optimizer_step()`` (DINO drops the last layer's gradients), ``optimizer.step``, ``zero_grad``;
4. the scheduler, stepped per update (timm's ``step_update``, or a torch scheduler's ``step``) or per epoch;
5. EMA (``timm.utils.ModelEmaV3``) and ``after_update(update)`` (DINO's teacher).

Around it: the progress bar, the finiteness check and loss read-out at log intervals only (no host sync in a
step), per-epoch log rows, checkpoints (``TrainingState``: counters, running loss sums, every process's RNG),
exact resume, DDP wrapping and ``torch.compile`` after it (timm's order, so that all-reduce overlaps backward).

Under DDP every rank takes part in every update: a micro-batch whose images were all unreadable is replaced
by the rank's previous batch with weight 0 (its loss and gradient count zero), so no rank skips a collective.
No other file under ``simpool/`` calls ``backward()`` or steps an optimizer or a scaler.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .distributed import DistInfo, all_reduce_sum
from .run import RunFolder
from .state import TrainingState
from .validation import autocast, resolve_amp

Step = Callable[[nn.Module, Any, torch.Tensor, float], tuple[torch.Tensor, int]]


def clip_global_norm(model: nn.Module, value: float) -> None:
    """timm's default: the gradients of all parameters rescaled together to a global norm of at most ``value``."""
    nn.utils.clip_grad_norm_(model.parameters(), value)


def clip_per_tensor(model: nn.Module, value: float) -> None:
    """DINO's clipping: each parameter's gradient separately rescaled to norm at most ``value``."""
    for param in model.parameters():
        if param.grad is not None:
            norm = param.grad.detach().norm(2)
            param.grad.mul_(torch.clamp(value / (norm + 1e-6), max=1.0))


CLIP_MODES: dict[str, Callable[[nn.Module, float], None]] = {"norm": clip_global_norm, "per_tensor": clip_per_tensor}
SCHEDULE_ON = ("update", "epoch")


def configure_backends(device: torch.device, tf32: bool = True) -> None:
    """GPU speed defaults: TF32 matmuls and convolutions, and ``cudnn.benchmark`` (no-op off CUDA)."""
    if device.type != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True


def ddp_wrap(module: nn.Module, info: DistInfo) -> DistributedDataParallel:
    """``module`` in DDP (``device_ids`` on CUDA, none on the CPU with gloo)."""
    return DistributedDataParallel(module, device_ids=[info.device.index] if info.device.type == "cuda" else None)


def single_process(device: torch.device | str = "cpu") -> DistInfo:
    """The :class:`DistInfo` of a run without ``torchrun`` (the demo, the tournament, the probes)."""
    return DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device(device))


class Engine:
    """Train ``model`` with ``optimizer``: see the module docstring for what runs when.

    Args:
        model: the bare module whose parameters ``optimizer`` updates (wrapped in DDP and compiled by
            :meth:`fit`; ``self.model`` is the wrapped one, ``self.module`` the bare one).
        optimizer: any torch optimizer.
        step: ``(model, inputs, targets, weight) -> (mean loss, count)``; ``weight`` is 1.0, or 0.0 for the
            stand-in of an empty micro-batch under DDP (a step with side effects, such as DINO's centre,
            scales them by it).
        info: rank, world size and device (:func:`single_process` by default).
        amp: ``none``, ``bf16``, ``fp16`` (with a ``GradScaler``) or ``auto`` (bf16 or fp16 on CUDA, none on the CPU).
        accum_steps: micro-batches per update.
        clip_grad: clipping threshold (None or 0: none); clip_mode: a key of ``CLIP_MODES``.
        scheduler: a timm scheduler (``step_update`` / ``step(epoch)``) or a torch LR scheduler, or None.
        schedule_on: ``update`` (stepped after every update) or ``epoch`` (after every epoch).
        ema: a ``timm.utils.ModelEmaV3``, updated after every update.
        compile: ``torch.compile`` the model after the DDP wrapping.
        sync_batchnorm: convert BatchNorm layers to ``SyncBatchNorm`` under DDP.
        before_update, before_optimizer_step, after_update: recipe hooks (see the module docstring).
        desc: progress-bar label; progress: show the bar (rank 0 only).
        log_every: updates between loss read-outs (progress bar, finiteness check).
        checkpoint_every: also save the training state every N updates (0: at epoch ends only).
        max_updates: stop after this many updates, resumable (0: no limit).
        kill_at_update: testing hook, SIGKILL this process after that update (0: never).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        step: Step,
        *,
        info: DistInfo | None = None,
        amp: str = "none",
        accum_steps: int = 1,
        clip_grad: float | None = None,
        clip_mode: str = "norm",
        scheduler: Any = None,
        schedule_on: str = "update",
        ema: Any = None,
        compile: bool = False,
        sync_batchnorm: bool = False,
        before_update: Callable[[int], None] | None = None,
        before_optimizer_step: Callable[[], None] | None = None,
        after_update: Callable[[int], None] | None = None,
        desc: str = "train",
        progress: bool = True,
        log_every: int = 50,
        checkpoint_every: int = 0,
        max_updates: int = 0,
        kill_at_update: int = 0,
    ):
        if clip_mode not in CLIP_MODES:
            raise ValueError(f"clip_mode={clip_mode!r}; valid modes: {', '.join(CLIP_MODES)}")
        if schedule_on not in SCHEDULE_ON:
            raise ValueError(f"schedule_on={schedule_on!r}; valid: {', '.join(SCHEDULE_ON)}")
        if accum_steps < 1:
            raise ValueError(f"accum_steps must be at least 1, got {accum_steps}")
        self.info = info or single_process(next(model.parameters()).device)
        if sync_batchnorm and self.info.distributed and self.info.device.type != "cuda":
            raise ValueError("sync_bn: SyncBatchNorm runs on CUDA devices only; turn it off for CPU (gloo) runs")
        self.module = self.model = model
        self.optimizer, self.step = optimizer, step
        self.amp, self.accum_steps = resolve_amp(amp, self.info.device), accum_steps
        self.clip_grad, self.clip = clip_grad, CLIP_MODES[clip_mode]
        self.scheduler, self.schedule_on, self.ema = scheduler, schedule_on, ema
        self.compile, self.sync_batchnorm = compile, sync_batchnorm
        self.before_update, self.before_optimizer_step, self.after_update = (
            before_update,
            before_optimizer_step,
            after_update,
        )
        self.desc, self.progress, self.log_every = desc, progress, max(log_every, 1)
        self.checkpoint_every, self.max_updates, self.kill_at_update = checkpoint_every, max_updates, kill_at_update
        self.scaler = torch.amp.GradScaler(self.info.device.type) if self.amp == "fp16" else None
        self.counters: dict[str, Any] = {"epoch": 0, "update_in_epoch": 0, "update": 0}
        self.last_loss: float = float("nan")  # the loss read at the last log interval
        self._template = None  # this rank's last non-empty micro-batch, the stand-in for an empty one
        self._loss: torch.Tensor | None = None  # the last micro-batch's loss, on the device
        self._elapsed = 0.0
        self._wrapped = False

    # ------------------------------------------------------------------------------------------------ set-up
    def wrap(self) -> nn.Module:
        """SyncBatchNorm and DDP under ``torchrun``, then ``torch.compile``: after resume, once."""
        if self._wrapped:
            return self.model
        model = self.module
        if self.info.distributed:
            if self.sync_batchnorm:  # the same Parameter objects: the optimizer and state dict are unchanged
                model = self.module = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            model = ddp_wrap(model, self.info)
        if self.compile:  # after DDP, as timm's train.py: the all-reduce buckets still overlap the backward
            model = torch.compile(model)
        self.model, self._wrapped = model, True
        return model

    # ------------------------------------------------------------------------------------------------ one update
    def _micro_batches(self, batches: Iterable, totals: torch.Tensor):
        """``(inputs, targets, weight)`` of every micro-batch; empty ones replaced under DDP, skipped otherwise."""
        for inputs, targets, skipped in batches:
            totals[2] += skipped
            if len(targets):
                self._template = (inputs, targets)
                yield inputs, targets, 1.0
            elif self.info.distributed:  # every rank must reach the same all-reduces
                if self._template is None:
                    raise RuntimeError(
                        f"rank {self.info.rank}: the first micro-batch had no readable image; "
                        "check the dataset for unreadable files"
                    )
                yield *self._template, 0.0
            else:
                yield None, targets, 0.0

    def _backward(self, inputs, targets, weight: float, last_micro: bool, totals: torch.Tensor) -> torch.Tensor | None:
        sync = contextlib.nullcontext()
        if self.info.distributed and not last_micro:
            sync = self.model.no_sync()
        with sync:
            with autocast(self.info.device, self.amp):
                loss, count = self.step(self.model, inputs, targets, weight)
            scaled = loss / self.accum_steps if weight == 1.0 else loss * 0.0
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        loss = loss.detach()
        totals[0] += loss.double() * (count * weight)
        totals[1] += count * weight
        return loss

    def _optimizer_step(self) -> None:
        if self.clip_grad:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            self.clip(self.module, self.clip_grad)
        if self.before_optimizer_step is not None:
            self.before_optimizer_step()
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _after_update(self, update: int) -> None:
        if self.scheduler is not None and self.schedule_on == "update":
            if hasattr(self.scheduler, "step_update"):  # timm
                self.scheduler.step_update(num_updates=update)
            else:
                self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.module, step=update)
        if self.after_update is not None:
            self.after_update(update)

    def _resume_schedule(self) -> None:
        """The learning rate of the resumed position, from a timm scheduler built from the current config (the
        same value an uninterrupted run has, and the extended schedule's when ``train.epochs`` grew)."""
        if self.scheduler is None or not hasattr(self.scheduler, "step_update"):
            return
        if self.schedule_on == "update":
            self.scheduler.step_update(num_updates=self.counters["update"])
        else:
            self.scheduler.step(self.counters["epoch"])

    def check_finite(self, loss: torch.Tensor | None) -> float:
        """The last loss as a float, checked on every rank together: a non-finite loss anywhere stops them all."""
        value = loss.float() if loss is not None else torch.zeros((), device=self.info.device)
        bad = all_reduce_sum((~torch.isfinite(value)).to(torch.float32).reshape(1))
        if bad.item():
            raise FloatingPointError(
                f"the training loss is not finite at update {self.counters['update']}: "
                "lower the learning rate, or train without fp16 AMP"
            )
        return float(value)

    # ------------------------------------------------------------------------------------------------ the loop
    def fit(
        self,
        batches: Callable[[int, int], Iterable],
        epochs: int,
        updates_per_epoch: int | None,
        end_epoch: Callable[[int, dict], None] | None = None,
        summary: Callable[[dict], str] | None = None,
        folder: RunFolder | None = None,
        state_objects: dict[str, Any] | None = None,
        resume: bool = False,
        seed: int | None = None,
        config: Any = None,
    ) -> dict:
        """Train for ``epochs`` epochs of ``updates_per_epoch`` updates (None: as many as ``batches`` gives);
        returns the last log row.

        Args:
            batches: ``(epoch, start_update) -> iterable of (inputs, targets, skipped)`` micro-batches, starting
                at update ``start_update`` of the epoch (after a resume).
            end_epoch: ``(epoch, row) -> None`` at each epoch end, before the state is saved: validation,
                monitors, weights; it adds its numbers to ``row`` and may keep counters in ``self.counters``.
            summary: ``row -> one line`` printed after each epoch (rank 0).
            folder: the run folder (log rows, ``last.pt``); None for runs that keep nothing on disk.
            state_objects: what ``last.pt`` saves besides the counters and the scaler (unwrapped modules,
                optimizer, scheduler, EMA...).
            resume: continue from ``folder``'s ``last.pt`` when it exists.
            seed: a fresh start with a folder seeds every RNG with ``seed + rank``.
            config: the run's resolved config: a resume checks it against the folder's ``config.yaml`` (only
                ``train.epochs`` may grow), which is then written (:meth:`TrainingState.resume`).
        """
        state = None
        if folder is not None:
            state = TrainingState(folder, self.info, {**(state_objects or {}), "scaler": self.scaler})
            resumed = state.resume(resume, seed=seed or 0, config=config)
            self.counters.update(resumed)
            if resumed:
                self._resume_schedule()
        self.wrap()
        row: dict = {}
        while self.counters["epoch"] < epochs:
            epoch, start_update = self.counters["epoch"], self.counters["update_in_epoch"]
            # loss sum, samples, skipped images: on the device (no host sync); resumed mid-epoch from the state
            saved = self.counters.pop("totals", None)
            totals = torch.zeros(3, dtype=torch.float64, device=self.info.device)
            if saved is not None and self.info.is_main:  # the sums over all processes, counted once
                totals += torch.tensor(saved, dtype=torch.float64, device=self.info.device)
            stopped = self._train_epoch(batches(epoch, start_update), epoch, epochs, updates_per_epoch, totals, state)
            if stopped:
                row = {"epoch": epoch, "update": self.counters["update"]}
                break
            row = self._end_epoch(epoch, totals, end_epoch)
            if state is not None:
                state.save(**self.counters)
                folder.log(row, step=epoch + 1)
            if self.info.is_main and summary is not None:
                print(summary(row))
            if self.max_updates and self.counters["update"] >= self.max_updates:
                break
        return row

    def run_update(self, micro_batches: Iterable, totals: torch.Tensor | None = None) -> int:
        """One optimizer update from up to ``accum_steps`` ``(inputs, targets, weight)`` micro-batches.

        ``inputs`` None is a micro-batch with nothing to train on (single process only). Returns how many
        micro-batches it took (0: none left, no update). The loss sums go to ``totals`` (loss, samples, skipped).
        """
        totals = totals if totals is not None else torch.zeros(3, dtype=torch.float64, device=self.info.device)
        count = 0
        for index, (inputs, targets, weight) in enumerate(itertools.islice(micro_batches, self.accum_steps)):
            if index == 0 and self.before_update is not None:
                self.before_update(self.counters["update"])
            if inputs is not None:
                self._loss = self._backward(inputs, targets, weight, index == self.accum_steps - 1, totals)
            count += 1
        if count == 0:
            return 0
        self._optimizer_step()
        self.counters["update"] += 1
        self.counters["update_in_epoch"] += 1
        self._after_update(self.counters["update"])
        return count

    def _train_epoch(self, batches, epoch: int, epochs: int, updates_per_epoch: int | None, totals, state) -> bool:
        """One epoch (or its rest); True when ``max_updates`` stopped it in the middle."""
        counters = self.counters
        self.module.train()
        started = time.perf_counter()
        bar = tqdm(
            total=updates_per_epoch,
            initial=counters["update_in_epoch"],
            desc=f"{self.desc} epoch {epoch + 1}/{epochs}",
            disable=not (self.progress and self.info.is_main),
            dynamic_ncols=True,
            leave=False,
        )
        micro_batches = self._micro_batches(batches, totals)
        self._loss = None
        while self.run_update(micro_batches, totals):
            update, in_epoch = counters["update"], counters["update_in_epoch"]
            bar.update(1)
            if update % self.log_every == 0 or in_epoch == updates_per_epoch:
                self.last_loss = self.check_finite(self._loss)
                seen = totals[1].item() * self.info.world_size
                bar.set_postfix(
                    loss=f"{self.last_loss:.4f}",
                    lr=f"{self.optimizer.param_groups[0]['lr']:.2e}",
                    img_s=f"{seen / max(time.perf_counter() - started, 1e-9):.0f}",
                )
            mid_epoch = updates_per_epoch is None or in_epoch < updates_per_epoch
            if state is not None and self.checkpoint_every and update % self.checkpoint_every == 0 and mid_epoch:
                self._save(state, totals)
            if self.kill_at_update and update == self.kill_at_update:
                os.kill(os.getpid(), signal.SIGKILL)  # testing hook: die like a preempted job
            if self.max_updates and update >= self.max_updates and mid_epoch:
                if state is not None:
                    self._save(state, totals)  # resumable from here
                bar.close()
                return True
        bar.close()
        self._elapsed = time.perf_counter() - started
        return False

    def _save(self, state: TrainingState, totals: torch.Tensor) -> None:
        """The state mid-epoch, with the epoch's running sums over all processes (kept by rank 0 on resume)."""
        summed = all_reduce_sum(totals).tolist()
        state.save(**self.counters, totals=summed)

    def _end_epoch(self, epoch: int, totals: torch.Tensor, end_epoch) -> dict:
        loss_sum, seen, skipped = all_reduce_sum(totals).tolist()
        self.counters.update(epoch=epoch + 1, update_in_epoch=0)
        if self.scheduler is not None and self.schedule_on == "epoch":
            self.scheduler.step(epoch + 1) if hasattr(self.scheduler, "step_update") else self.scheduler.step()
        elapsed = self._elapsed
        row = {
            "epoch": epoch,
            "update": self.counters["update"],
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": loss_sum / max(seen, 1),
            "images_per_s": seen / max(elapsed, 1e-9),
            "skipped": int(skipped),
            "time_s": elapsed,
        }
        if end_epoch is not None:
            end_epoch(epoch, row)
            self.module.train()
        return row
