"""The one training loop: every training in simpool (supervised, DINO, fine-tuning, the probes, the demo, the
tournament) is a :class:`~simpool.train.recipe.Recipe` run by :class:`Engine`.

The recipe says what a step is (:mod:`.recipe`); the engine owns the rest, in this order for each update:

1. ``recipe.before_update(update)`` (DINO sets its per-update learning rate and weight decay);
2. for each of ``accum_steps`` micro-batches: ``recipe.step`` under autocast (bf16, or fp16 with a
   ``GradScaler``), ``backward`` of ``loss / accum_steps`` (DDP's all-reduce only on the last micro-batch);
3. ``unscale_`` then clipping (``clip_mode``: the global norm as timm, or each tensor as DINO), then
   ``recipe.before_optimizer_step()`` (DINO drops the last layer's gradients), ``optimizer.step``, ``zero_grad``;
4. the schedule (per update or per epoch, :class:`~simpool.train.schedule.Schedule`), EMA
   (``timm.utils.ModelEmaV3``), ``recipe.after_update(update)`` (DINO's teacher), then the engine's
   ``update_hooks`` (tests inject theirs there: a SIGKILL at a chosen update).

Around it: the progress bar, the finiteness check and loss read-out at log intervals only (no host sync in a
step), per-epoch log rows, checkpoints (``TrainingState``: counters, running sums, every process's RNG),
exact resume, DDP wrapping and ``torch.compile`` after it (timm's order, so that all-reduce overlaps backward).

Under DDP every rank takes part in every update: a micro-batch whose images were all unreadable is replaced
by the rank's previous batch with weight 0 (its loss and gradient count zero), so no rank skips a collective;
at the run's first micro-batch, which has no previous one, the ranks agree once on a stand-in (another rank's
batch). The next micro-batch is read before each backward, so the last one of an update synchronises the
gradients, also in an epoch's shorter last update. Every save first checks, on every rank together, that the
saved weights and the last loss are finite: a NaN never becomes the resume point. Validation (``end_epoch``)
gets the bare module, not the compiled DDP wrapper. No other file under ``simpool/`` calls ``backward()`` or
steps an optimizer or a scaler.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from timm.layers import convert_sync_batchnorm
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils._pytree import tree_map
from tqdm import tqdm

from .distributed import DistInfo, all_reduce_sum, broadcast_object
from .run import RunFolder
from .schedule import Schedule
from .state import TrainingState
from .validation import autocast, resolve_amp


@dataclass
class Loop:
    """How the engine runs a recipe's steps: nothing here changes what a step computes.

    Args:
        amp: ``none``, ``bf16``, ``fp16`` (with a ``GradScaler``) or ``auto`` (bf16 or fp16 on CUDA, none on a CPU).
        accum_steps: micro-batches per optimizer update.
        compile: ``torch.compile`` the model after the DDP wrapping.
        sync_batchnorm: convert BatchNorm layers to synchronised ones under DDP (CUDA only), with
            timm's ``convert_sync_batchnorm``, which turns ``BatchNormAct2d`` into ``SyncBatchNormAct`` (its
            activation kept and called; torch's converter would make it a plain ``SyncBatchNorm`` and drop it).
        ddp_broadcast_buffers: DDP copies rank 0's buffers (BatchNorm statistics) to every rank before each
            forward (DDP's default; timm's ``--no-ddp-bb`` turns it off).
        progress: show the progress bar (rank 0).
        log_every: updates between loss read-outs (progress bar, finiteness check).
        checkpoint_every: also save the training state every N updates (0: at epoch ends only).
        max_updates: stop after this many updates, resumable (0: no limit).
        resume: continue from the run folder's ``last.pt`` when it exists.
        seed: a fresh start with a run folder seeds every RNG with ``seed + rank``.
    """

    amp: str = "none"
    accum_steps: int = 1
    compile: bool = False
    sync_batchnorm: bool = False
    ddp_broadcast_buffers: bool = True
    progress: bool = True
    log_every: int = 50
    checkpoint_every: int = 0
    max_updates: int = 0
    resume: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.accum_steps < 1:
            raise ValueError(f"accum_steps must be at least 1, got {self.accum_steps}")
        self.log_every = max(self.log_every, 1)

    @classmethod
    def from_config(cls, train: Any, **settings) -> Loop:
        """The loop settings of a ``train`` section (:class:`~simpool.train.config.LoopConfig` or one that
        extends it); ``settings`` add or replace what the section does not hold (``compile``, ...)."""
        names = [name for name in cls.__dataclass_fields__ if hasattr(train, name)]
        return cls(**{**{name: getattr(train, name) for name in names}, **settings})


@dataclass
class Parts:
    """What :meth:`Recipe.build` returns: the trained module and how it is updated.

    Args:
        model: the bare module whose parameters ``optimizer`` updates (the engine wraps it in DDP and compiles it).
        optimizer: any torch optimizer.
        epochs: how many epochs to train.
        updates_per_epoch: optimizer updates per epoch (None: as many as :meth:`Recipe.batches` gives).
        schedule: the learning-rate :class:`~simpool.train.schedule.Schedule`, or None.
        ema: a ``timm.utils.ModelEmaV3`` updated after every update, or None.
        clip_grad: gradient clipping threshold (None or 0: none); clip_mode: a key of ``engine.CLIP_MODES``.
        state: the named objects ``last.pt`` saves (modules, optimizer, EMA, a loss's centre...); empty:
            ``model``, ``optimizer`` and ``ema``. The engine adds its counters, the AMP scaler and the RNGs.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    epochs: int = 1
    updates_per_epoch: int | None = None
    schedule: Schedule | None = None
    ema: Any = None
    clip_grad: float | None = None
    clip_mode: str = "norm"
    state: dict[str, Any] = field(default_factory=dict)

    def saved_objects(self) -> dict[str, Any]:
        return self.state or {"model": self.model, "optimizer": self.optimizer, "ema": self.ema}


def clip_global_norm(model: nn.Module, value: float) -> None:
    """timm's default: the gradients of all parameters rescaled together to a global norm of at most ``value``."""
    nn.utils.clip_grad_norm_(model.parameters(), value)


def clip_per_tensor(model: nn.Module, value: float) -> None:
    """DINO's clipping: each parameter's gradient separately rescaled to norm at most ``value``
    (``g <- g * min(1, value / (||g|| + 1e-6))``), all norms in one ``torch._foreach_norm``."""
    grads = [param.grad.detach() for param in model.parameters() if param.grad is not None]
    if not grads:
        return
    norms = torch._foreach_norm(grads)  # one 0-dim norm per tensor, on its device
    scales = [torch.clamp(value / (norm + 1e-6), max=1.0) for norm in norms]
    torch._foreach_mul_(grads, scales)


CLIP_MODES: dict[str, Callable[[nn.Module, float], None]] = {"norm": clip_global_norm, "per_tensor": clip_per_tensor}


def configure_backends(device: torch.device, tf32: bool = True) -> None:
    """GPU speed defaults: TF32 matmuls and convolutions, and ``cudnn.benchmark`` (no-op off CUDA)."""
    if device.type != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True


def ddp_wrap(module: nn.Module, info: DistInfo, broadcast_buffers: bool = True) -> DistributedDataParallel:
    """``module`` in DDP (``device_ids`` on CUDA, none on the CPU with gloo)."""
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, broadcast_buffers=broadcast_buffers)


def to_device(tree: Any, device: torch.device | str) -> Any:
    """Every tensor of a nested tuple / list / dict moved to ``device`` (other leaves kept)."""
    return tree_map(lambda value: value.to(device) if torch.is_tensor(value) else value, tree)


def single_process(device: torch.device | str = "cpu") -> DistInfo:
    """The :class:`DistInfo` of a run without ``torchrun`` (the demo, the tournament, the probes)."""
    return DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device(device))


@dataclasses.dataclass
class Counters:
    """Where the run is: epochs done, updates done in the current epoch and in all (what ``last.pt`` keeps)."""

    epoch: int = 0
    update_in_epoch: int = 0
    update: int = 0


class RunningSums:
    """The epoch's running sums on the device (no host sync in a step): loss x samples, samples, skipped images."""

    def __init__(self, device: torch.device, saved: dict | None = None):
        self.values = torch.zeros(3, dtype=torch.float64, device=device)  # (loss_sum, samples, skipped)
        if saved:
            self.values += torch.tensor(
                [saved["loss_sum"], saved["samples"], saved["skipped"]], dtype=torch.float64, device=device
            )

    def add(self, loss: torch.Tensor, count: float) -> None:
        self.values[0] += loss.double() * count
        self.values[1] += count

    def skip(self, images: int) -> None:
        self.values[2] += images

    def samples(self) -> float:
        """This process's samples so far (a host sync: at log intervals only)."""
        return self.values[1].item()

    def reduced(self) -> dict[str, float]:
        """The sums over all processes (every rank must call it)."""
        loss_sum, samples, skipped = all_reduce_sum(self.values.clone()).tolist()
        return {"loss_sum": loss_sum, "samples": samples, "skipped": skipped}


class Engine:
    """Run ``recipe`` with ``loop``'s settings: see the module docstring for what runs when.

    Args:
        recipe: what to train (:class:`~simpool.train.recipe.Recipe`); built by :meth:`run`.
        loop: how steps run (:class:`~simpool.train.recipe.Loop`; its defaults when None).
        info: rank, world size and device (:func:`single_process` on the CPU by default).
        folder: the run folder (log rows, ``last.pt``, resume); None for a run that keeps nothing on disk.

    After :meth:`run`, ``parts`` holds what the recipe built, ``model`` the module as trained (in DDP,
    compiled) and ``module`` the bare one.
    """

    update_hooks: ClassVar[tuple[Callable[[Engine], None], ...]] = ()  # after every update; tests inject theirs

    def __init__(self, recipe: Any, loop: Loop | None = None, info: DistInfo | None = None, folder=None):
        self.recipe, self.loop = recipe, loop or Loop()
        self.folder: RunFolder | None = folder
        self._infer_device = info is None  # then the device is the built model's
        self._set_info(info or single_process())
        if self.loop.sync_batchnorm and self.info.distributed and self.info.device.type != "cuda":
            raise ValueError("sync_bn: SyncBatchNorm runs on CUDA devices only; turn it off for CPU (gloo) runs")
        self.counters = Counters()
        self.last_loss: float = float("nan")  # the loss read at the last log interval
        self.parts: Parts | None = None
        self.model = self.module = None
        self._template = None  # this rank's last non-empty micro-batch, the stand-in for an empty one
        self._loss: torch.Tensor | None = None  # the last micro-batch's loss, on the device
        self._elapsed = 0.0

    # ------------------------------------------------------------------------------------------------ set-up
    def _set_info(self, info: DistInfo) -> None:
        """The process's rank and device, and the precision (and fp16's scaler) they give."""
        self.info = info
        self.amp = resolve_amp(self.loop.amp, info.device)
        self.scaler = torch.amp.GradScaler(info.device.type) if self.amp == "fp16" else None

    def build(self) -> Parts:
        """Build the recipe (once) and check its clipping mode; without ``info``, run on the model's device."""
        if self.parts is None:
            parts = self.recipe.build(self.info)
            if parts.clip_mode not in CLIP_MODES:
                raise ValueError(f"clip_mode={parts.clip_mode!r}; valid modes: {', '.join(CLIP_MODES)}")
            if self._infer_device:
                self._set_info(single_process(next(parts.model.parameters()).device))
            self.parts, self.model, self.module = parts, parts.model, parts.model
        return self.parts

    def wrap(self) -> nn.Module:
        """SyncBatchNorm and DDP under ``torchrun``, then ``torch.compile``: after resume, once."""
        model = self.module
        if self.info.distributed:
            if self.loop.sync_batchnorm:  # timm's: BatchNormAct2d keeps its activation; the same Parameter objects
                model = self.module = convert_sync_batchnorm(model)
            model = ddp_wrap(model, self.info, self.loop.ddp_broadcast_buffers)
        if self.loop.compile:  # after DDP, as timm's train.py: the all-reduce buckets still overlap the backward
            model = torch.compile(model)
        self.model = model
        return model

    def _resume(self) -> tuple[TrainingState | None, dict | None]:
        """The run folder's state, resumed when it holds one: ``(state, the epoch's saved running sums)``."""
        if self.folder is None:
            return None, None
        objects = {**self.parts.saved_objects(), "scaler": self.scaler}
        state = TrainingState(self.folder, self.info, objects)
        resumed = state.resume(self.loop.resume, seed=self.loop.seed, config=self.recipe.config)
        sums = resumed.pop("totals", None)
        if resumed:
            self.counters = Counters(**{key: resumed[key] for key in ("epoch", "update_in_epoch", "update")})
            if self.parts.schedule is not None:
                self.parts.schedule.resume(self.counters.update, self.counters.epoch)
        return state, sums

    # ------------------------------------------------------------------------------------------------ the loop
    def run(self) -> dict:
        """Build, resume, wrap and train for the recipe's epochs; returns ``recipe.summary`` of the last row."""
        parts = self.build()
        state, sums = self._resume()
        self.wrap()
        row: dict = {}
        while self.counters.epoch < parts.epochs:
            epoch, start_update = self.counters.epoch, self.counters.update_in_epoch
            # resumed mid-epoch: the saved sums over all processes, counted once (by rank 0)
            running = RunningSums(self.info.device, sums if self.info.is_main else None)
            sums = None
            if self._train_epoch(self.recipe.batches(epoch, start_update), running, state):
                row = {"epoch": epoch, "update": self.counters.update}
                break
            row = self._end_epoch(epoch, running)
            if state is not None:
                self._save(state)
                self.folder.log(row, step=epoch + 1)
            line = self.recipe.epoch_line(row) if self.info.is_main else None
            if line:
                print(line)
            if self.loop.max_updates and self.counters.update >= self.loop.max_updates:
                break
        return self.recipe.summary(row)

    def _train_epoch(self, batches: Iterable, running: RunningSums, state: TrainingState | None) -> bool:
        """One epoch (or its rest); True when ``max_updates`` stopped it in the middle."""
        counters, per_epoch = self.counters, self.parts.updates_per_epoch
        self.module.train()
        started = time.perf_counter()
        bar = tqdm(
            total=per_epoch,
            initial=counters.update_in_epoch,
            desc=f"{self.recipe.name} epoch {counters.epoch + 1}/{self.parts.epochs}",
            disable=not (self.loop.progress and self.info.is_main),
            dynamic_ncols=True,
            leave=False,
        )
        micro_batches = self._micro_batches(batches, running)
        self._loss = None
        while self.run_update(micro_batches, running):
            update, in_epoch = counters.update, counters.update_in_epoch
            bar.update(1)
            if update % self.loop.log_every == 0 or in_epoch == per_epoch:
                self._read_out(bar, running, started)
            mid_epoch = per_epoch is None or in_epoch < per_epoch
            if state is not None and self.loop.checkpoint_every and update % self.loop.checkpoint_every == 0:
                if mid_epoch:
                    self._save(state, running)
            if self.loop.max_updates and update >= self.loop.max_updates and mid_epoch:
                if state is not None:
                    self._save(state, running)  # resumable from here
                bar.close()
                return True
        bar.close()
        self._elapsed = time.perf_counter() - started
        return False

    def _read_out(self, bar: tqdm, running: RunningSums, started: float) -> None:
        """The loss (checked finite on every rank), learning rate and throughput on the progress bar."""
        self.last_loss = self.check_finite(self._loss)
        seen = running.samples() * self.info.world_size
        bar.set_postfix(
            loss=f"{self.last_loss:.4f}",
            lr=f"{self.parts.optimizer.param_groups[0]['lr']:.2e}",
            img_s=f"{seen / max(time.perf_counter() - started, 1e-9):.0f}",
        )

    # ------------------------------------------------------------------------------------------------ one update
    def _micro_batches(self, batches: Iterable, running: RunningSums):
        """``(inputs, targets, weight)`` of every micro-batch; empty ones replaced under DDP, skipped otherwise."""
        for inputs, targets, skipped in batches:
            running.skip(skipped)
            if self.info.distributed and self._template is None:  # the run's first micro-batch, on every rank
                self._template = self._first_template(inputs, targets)
            if len(targets):
                self._template = (inputs, targets)
                yield inputs, targets, 1.0
            elif self.info.distributed:  # every rank must reach the same all-reduces
                yield *self._template, 0.0
            else:
                yield None, targets, 0.0

    def _first_template(self, inputs, targets) -> tuple:
        """The stand-in for this rank's empty micro-batches, agreed by every rank at the run's first micro-batch
        (one collective per run): this rank's own batch, or, where it had no readable image, the batch of the
        first rank that had one. When no rank had one, every rank raises the same error."""
        info = self.info
        readable = torch.zeros(info.world_size, device=info.device)  # (world,): 1 where a rank has images
        readable[info.rank] = float(len(targets) > 0)
        readable = all_reduce_sum(readable).tolist()
        if not any(readable):
            raise ValueError(
                "the first micro-batch of every process had no readable image: check the dataset for unreadable files"
            )
        if all(readable):
            return inputs, targets
        source = readable.index(1.0)
        if len(targets):
            broadcast_object(to_device((inputs, targets), "cpu") if info.rank == source else None, info, src=source)
            return inputs, targets
        return to_device(broadcast_object(None, info, src=source), info.device)

    def run_update(self, micro_batches: Iterable, running: RunningSums | None = None) -> int:
        """One optimizer update from up to ``accum_steps`` ``(inputs, targets, weight)`` micro-batches.

        ``inputs`` None is a micro-batch with nothing to train on (single process only). Returns how many
        micro-batches it took (0: none left, no update). The loss sums go to ``running``. The next micro-batch
        is read before a backward, so the last one of an update synchronises the gradients under DDP, also in
        an epoch's last update when it has fewer than ``accum_steps`` (each is still ``loss / accum_steps``, as
        one process with the same global batch).
        """
        self.build()
        running = running if running is not None else RunningSums(self.info.device)
        accum, count = self.loop.accum_steps, 0
        iterator = iter(micro_batches)
        current = next(iterator, None)
        while current is not None:
            if count == 0:
                self.recipe.before_update(self.counters.update)
            following = next(iterator, None) if count + 1 < accum else None
            inputs, targets, weight = current
            if inputs is not None:
                self._loss = self._backward(inputs, targets, weight, following is None, running)
            count, current = count + 1, following
        if count == 0:
            return 0
        self._optimizer_step()
        self.counters.update += 1
        self.counters.update_in_epoch += 1
        self._after_update(self.counters.update)
        return count

    def _backward(self, inputs, targets, weight: float, last_micro: bool, running: RunningSums) -> torch.Tensor:
        sync = contextlib.nullcontext()
        if self.info.distributed and not last_micro:
            sync = self.model.no_sync()
        with sync:
            with autocast(self.info.device, self.amp):
                loss, count = self.recipe.step(self.model, inputs, targets, weight)
            scaled = loss / self.loop.accum_steps if weight == 1.0 else loss * 0.0
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        loss = loss.detach()
        running.add(loss, count * weight)
        return loss

    def _optimizer_step(self) -> None:
        parts = self.parts
        if parts.clip_grad:
            if self.scaler is not None:
                self.scaler.unscale_(parts.optimizer)
            CLIP_MODES[parts.clip_mode](self.module, parts.clip_grad)
        self.recipe.before_optimizer_step()
        if self.scaler is not None:
            self.scaler.step(parts.optimizer)
            self.scaler.update()
        else:
            parts.optimizer.step()
        parts.optimizer.zero_grad(set_to_none=True)

    def _after_update(self, update: int) -> None:
        if self.parts.schedule is not None:
            self.parts.schedule.after_update(update)
        if self.parts.ema is not None:
            self.parts.ema.update(self.module, step=update)
        self.recipe.after_update(update)
        for hook in self.update_hooks:
            hook(self)

    def check_finite(self, loss: torch.Tensor | None) -> float:
        """The last loss as a float, checked on every rank together: a non-finite loss anywhere stops them all."""
        value = loss.float() if loss is not None else torch.zeros((), device=self.info.device)
        self._stop_unless(torch.isfinite(value), "the training loss is")
        return float(value)

    def _stop_unless(self, finite: torch.Tensor, what: str) -> None:
        """Every rank raises the same ``FloatingPointError`` when ``finite`` (0-dim bool) is false on any rank."""
        bad = all_reduce_sum((~finite).to(torch.float32).reshape(1))
        if bad.item():
            raise FloatingPointError(
                f"{what} not finite at update {self.counters.update}: "
                "lower the learning rate, or train without fp16 AMP"
            )

    def saved_tensors_finite(self) -> torch.Tensor:
        """Whether every floating tensor of the saved modules (weights, buffers, EMA, teacher) and the last loss
        are finite: a 0-dim bool on the device (no host sync)."""
        modules = [obj for obj in self.parts.saved_objects().values() if isinstance(obj, nn.Module)]
        tensors = [t for module in modules for t in module.state_dict().values() if torch.is_floating_point(t)]
        tensors += [self._loss] if self._loss is not None else []
        finite = [torch.isfinite(t).all().to(self.info.device) for t in tensors]
        return torch.stack(finite).all() if finite else torch.ones((), dtype=torch.bool, device=self.info.device)

    # ------------------------------------------------------------------------------------------------ epoch ends
    def _save(self, state: TrainingState, running: RunningSums | None = None) -> None:
        """``last.pt``, after every rank checked together that what it saves is finite (a NaN weight never becomes
        the resume point: the previous ``last.pt`` stays); mid-epoch with the epoch's running sums over all
        processes (kept by rank 0 on resume)."""
        where = f"the weights or the loss to save in {state.folder.path} (whose last.pt is kept) are"
        self._stop_unless(self.saved_tensors_finite(), where)
        totals = {} if running is None else {"totals": running.reduced()}
        state.save(**dataclasses.asdict(self.counters), **totals)

    def _end_epoch(self, epoch: int, running: RunningSums) -> dict:
        sums = running.reduced()
        self.counters.epoch, self.counters.update_in_epoch = epoch + 1, 0
        if self.parts.schedule is not None:
            self.parts.schedule.after_epoch(epoch + 1)
        row = {
            "epoch": epoch,
            "update": self.counters.update,
            "lr": self.parts.optimizer.param_groups[0]["lr"],
            "train_loss": sums["loss_sum"] / max(sums["samples"], 1),
            "images_per_s": sums["samples"] / max(self._elapsed, 1e-9),
            "skipped": int(sums["skipped"]),
            "time_s": self._elapsed,
        }
        self.recipe.end_epoch(epoch, row, self.module)  # the bare module: validating the compiled DDP one recompiles
        self.model.train()  # the wrappers and the module
        return row


__all__ = ["CLIP_MODES", "Counters", "Engine", "Loop", "Parts", "RunningSums", "single_process"]
