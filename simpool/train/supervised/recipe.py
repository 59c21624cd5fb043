"""Supervised training with timm's machinery: :class:`SupervisedRecipe`, and ``train(config)`` that launches it.

The recipe follows timm's ``train.py`` (the paper's Appendix C.2 trains with it): a model from
``simpool.create_model``, ``create_optimizer_v2``, ``create_scheduler_v2`` stepped per update (or per epoch),
Mixup / CutMix with soft-target cross-entropy (else label-smoothed cross-entropy), ``create_transform``
augmentation and augmentation splits with the JSD loss, ``ModelEmaV3``, optional split BatchNorm,
channels_last. Precision, accumulation, DDP, ``torch.compile``, checkpoints and resume are the engine's
(:class:`~simpool.train.engine.Engine`); the run folder's lock, signals and errors are
:func:`~simpool.train.launch.launch`'s.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from timm.data import Mixup
from timm.layers import convert_splitbn_model
from timm.loss import JsdCrossEntropy, LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3
from torch import nn
from torch.utils.data import DataLoader

from ...data.datasets import ShardSampler, StepSampler, check_skipped, collate_skip, create_dataset
from ...data.transforms import build_transforms
from ...models import create_model, save_checkpoint
from ...models.checkpoint import load_pretrained
from ...models.factory import check_input_size
from ..distributed import DIST_BN_MODES, DistInfo, barrier, synchronize_batchnorm, unwrap
from ..engine import configure_backends
from ..launch import launch
from ..recipe import Loop, Parts, Recipe
from ..run import RunFolder
from ..schedule import Schedule
from ..validation import validate
from .aug_splits import check_aug_splits, drop_aux_bn, split_major
from .config import SupervisedConfig
from .monitor import AttentionMonitor


def micro_batch_size(config: SupervisedConfig, world_size: int) -> int:
    """Images per process per forward pass: ``batch_size / (world_size * accum_steps)``, which must divide."""
    run = config.train
    parts = world_size * run.accum_steps
    if run.batch_size % parts:
        raise ValueError(f"train.batch_size={run.batch_size} is not divisible by world_size x accum_steps = {parts}")
    return run.batch_size // parts


def build_loaders(config: SupervisedConfig, info: DistInfo):
    """Training and validation loaders (validation is None when its split folder is absent)."""
    data, run = config.data, config.train
    train_tf, eval_tf = build_transforms(data)
    bench = dict(variant=data.bench_variant, num_images=data.bench_images, image_size=data.img_size)
    train_set = create_dataset(data.dataset, data.root, data.train_split, train_tf, data.fraction, run.seed, **bench)
    micro = micro_batch_size(config, info.world_size)
    sampler = StepSampler(len(train_set), run.batch_size, info.rank, info.world_size, run.seed)
    common = dict(
        num_workers=data.num_workers,
        collate_fn=collate_skip,
        pin_memory=info.device.type == "cuda",
        persistent_workers=data.num_workers > 0,
    )
    train_loader = DataLoader(
        train_set, batch_size=micro, sampler=sampler, generator=torch.Generator().manual_seed(run.seed), **common
    )
    val_loader = None
    rendered_bench = data.dataset == "bench" and not data.root
    if (data.root and (Path(data.root) / data.val_split).is_dir()) or rendered_bench:
        val_set = create_dataset(data.dataset, data.root, data.val_split, eval_tf, **bench)
        val_loader = DataLoader(
            val_set,
            batch_size=run.eval_batch_size or micro,
            sampler=ShardSampler(len(val_set), info.rank, info.world_size),
            generator=torch.Generator().manual_seed(run.seed),
            **common,
        )
    return train_set, train_loader, val_loader


def build_mixup(config: SupervisedConfig, num_classes: int) -> Mixup | None:
    mix = config.mixup
    if mix.mixup <= 0 and mix.cutmix <= 0:
        return None
    return Mixup(
        mixup_alpha=mix.mixup,
        cutmix_alpha=mix.cutmix,
        prob=mix.prob,
        switch_prob=mix.switch_prob,
        mode=mix.mode,
        label_smoothing=mix.smoothing,
        num_classes=num_classes,
    )


def build_criterion(config: SupervisedConfig, mixup: Mixup | None) -> nn.Module:
    """timm's choice: JSD over augmentation splits, soft-target CE with Mixup/CutMix (labels already smoothed),
    else label-smoothed CE."""
    if config.data.jsd:
        return JsdCrossEntropy(num_splits=config.data.aug_splits, smoothing=config.mixup.smoothing)
    if mixup is not None:
        return SoftTargetCrossEntropy()
    if config.mixup.smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=config.mixup.smoothing)
    return nn.CrossEntropyLoss()


def build_monitor(config: SupervisedConfig) -> AttentionMonitor | None:
    """The attention monitor of ``config.monitor`` (None when ``every`` is 0)."""
    mon, data = config.monitor, config.data
    if mon.every <= 0:
        return None
    return AttentionMonitor(mon.source, data.img_size, data.mean, data.std, mon.max_images, mon.metadata, mon.images)


def build_model(config: SupervisedConfig, num_classes: int, device: torch.device) -> nn.Module:
    """``simpool.create_model`` of ``config.model``, initialised from ``model.checkpoint`` when set (fine-tuning:
    every weight but the classifier's), split BatchNorm with ``model.split_bn``, on ``device``."""
    model = create_model(
        config.model.name,
        pool=config.model.pool,
        pool_kwargs=config.model.pool_kwargs,
        num_classes=num_classes,
        in_chans=config.data.in_chans,
        **config.model.kwargs,
    )
    check_input_size(model, config.data.img_size, "data.img_size")  # model.kwargs.img_size: the model's
    if config.model.checkpoint:
        load_pretrained(model, config.model.checkpoint, key=config.model.checkpoint_key)
    if config.model.split_bn:  # after loading: a pretrained checkpoint has no aux_bn to fill them
        model = convert_splitbn_model(model, num_splits=config.data.aug_splits)
    model = model.to(device)
    if config.model.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def build_schedule(config: SupervisedConfig, optimizer: torch.optim.Optimizer, updates_per_epoch: int) -> Schedule:
    """timm's ``create_scheduler_v2``, stepped per update (``sched.on_updates``) or per epoch.

    Not saved in ``last.pt``: rebuilt from the config, so that a resume may extend ``train.epochs`` (timm keeps
    the run length in its state); the engine sets the resumed position's learning rate from it.
    """
    sched = config.sched
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched=sched.sched,
        num_epochs=config.train.epochs,
        warmup_epochs=sched.warmup_epochs,
        warmup_lr=sched.warmup_lr,
        min_lr=sched.min_lr,
        cooldown_epochs=sched.cooldown_epochs,
        step_on_epochs=not sched.on_updates,
        updates_per_epoch=updates_per_epoch,
    )
    return Schedule(scheduler, on="update" if sched.on_updates else "epoch")


def run_name(config: SupervisedConfig) -> str:
    return config.train.name or f"{config.model.name}-{config.model.pool}"


class BestScore:
    """The best epoch score so far (validation top-1, else minus the training loss), kept in ``last.pt`` so
    that a resumed run replaces ``best.safetensors`` only with weights that beat every epoch before."""

    def __init__(self) -> None:
        self.score = -math.inf

    def improve(self, score: float) -> bool:
        """Whether ``score`` beats the best so far (and becomes it)."""
        if score <= self.score:
            return False
        self.score = score
        return True

    def state_dict(self) -> dict:
        return {"score": self.score}

    def load_state_dict(self, state: dict | float) -> None:
        self.score = float(state["score"] if isinstance(state, dict) else state)  # a float: an older last.pt


def check_lr_floor(config: SupervisedConfig) -> None:
    """Refuse an ``optim.lr`` below the schedule's floor (``sched.min_lr``, or ``sched.warmup_lr`` during a
    warm-up): timm's schedule would train at the floor instead (``optim.lr=0`` at ``min_lr``, 1e-5 by default).

    Raises:
        ValueError: naming both keys and how to train at that rate (set the floor at or below it).
    """
    lr, sched = config.optim.lr, config.sched
    floors = {"sched.min_lr": sched.min_lr, "sched.warmup_lr": sched.warmup_lr if sched.warmup_epochs else 0.0}
    for key, floor in floors.items():
        if lr < floor:
            raise ValueError(
                f"optim.lr={lr:g} is below {key}={floor:g}, so the schedule would train at {floor:g}: set {key} "
                f"at or below optim.lr (e.g. {key}=0)"
            )


class SupervisedRecipe(Recipe):
    """One supervised training of a :class:`~simpool.train.supervised.config.SupervisedConfig`.

    The run folder ``<train.output>/<train.name or model-pool>`` holds ``config.yaml``, ``log.csv``, ``last.pt``
    (``model``, ``optimizer``, ``ema``, ``best`` beside the engine's counters, scaler and RNG states) and the
    weights ``last`` and ``best`` (and ``last_ema``, ``best_ema``) as safetensors a plain model loads.
    """

    name = "train"

    def __init__(self, config: SupervisedConfig):
        self.config = config
        self.run_dir = Path(config.train.output) / run_name(config)
        self.loop = Loop.from_config(config.train, compile=config.model.compile, sync_batchnorm=config.model.sync_bn)
        self.folder: RunFolder | None = None
        self.best = BestScore()

    def check(self) -> None:
        """The option combinations timm refuses, as one-line errors."""
        config = self.config
        mixing = config.mixup.mixup > 0 or config.mixup.cutmix > 0
        check_aug_splits(config.data.aug_splits, config.data.jsd, config.model.split_bn, mixing)
        if config.model.sync_bn and config.model.split_bn:  # timm's train.py refuses it too
            raise ValueError("model.sync_bn=true with model.split_bn=true: SyncBatchNorm drops the split; turn one off")
        if config.train.dist_bn not in DIST_BN_MODES:
            raise ValueError(f"train.dist_bn={config.train.dist_bn!r}: use one of {DIST_BN_MODES}")
        check_lr_floor(config)

    def build(self, info: DistInfo) -> Parts:
        config, run = self.config, self.config.train
        self.check()
        self.info = info
        if run.num_threads:
            torch.set_num_threads(run.num_threads)
        torch.manual_seed(run.seed)  # the same initial weights on every process
        train_set, self.train_loader, self.val_loader = build_loaders(config, info)
        num_classes = len(train_set.classes)
        model = build_model(config, num_classes, info.device)
        configure_backends(info.device, run.tf32)
        optim = config.optim
        optimizer = create_optimizer_v2(
            model, opt=optim.opt, lr=optim.lr, weight_decay=optim.weight_decay, momentum=optim.momentum, **optim.kwargs
        )
        updates_per_epoch = self.train_loader.sampler.updates_per_epoch
        self.ema = None
        if config.ema.enabled:
            self.ema = ModelEmaV3(model, decay=config.ema.decay, use_warmup=config.ema.warmup)
        self.mixup = build_mixup(config, num_classes)
        self.criterion = build_criterion(config, self.mixup)
        self.monitor = build_monitor(config) if info.is_main else None
        return Parts(
            model=model,
            optimizer=optimizer,
            epochs=run.epochs,
            updates_per_epoch=updates_per_epoch,
            schedule=build_schedule(config, optimizer, updates_per_epoch),
            ema=self.ema,
            clip_grad=optim.clip_grad,
            state={"model": model, "optimizer": optimizer, "ema": self.ema, "best": self.best},
        )

    def batches(self, epoch: int, start_update: int) -> DataLoader:
        self.train_loader.sampler.set_epoch(epoch, start_update)
        return self.train_loader

    def step(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor, weight: float):
        """``images (B, C, H, W)``, ``targets (B,)`` -> (mean loss, inputs it covers).

        Augmentation splits come as ``(B, S, C, H, W)`` and are trained as ``S * B`` inputs (timm's layout);
        timm's Mixup pairs samples, so one is dropped from an odd batch (after a skipped image).
        """
        device = self.info.device
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        if images.ndim == 5:  # augmentation splits (B, S, C, H, W) -> (S * B, C, H, W), targets repeated
            images, targets = split_major(images, targets)
        if self.config.model.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        soft = targets
        if self.mixup is not None:
            if len(targets) % 2:
                images, targets = images[:-1], targets[:-1]
            images, soft = self.mixup(images, targets)
        return self.criterion(model(images), soft), len(targets)

    def end_epoch(self, epoch: int, row: dict, model: nn.Module) -> None:
        """dist-bn, validation (and of the EMA), the attention monitor, best and last weights."""
        run, info = self.config.train, self.info
        sampler = self.train_loader.sampler  # the row's sums are over every process: all raise together
        check_skipped(row["skipped"], sampler.updates_per_epoch * sampler.global_batch, "training images of the epoch")
        synchronize_batchnorm(model, info, run.dist_bn)
        if self.ema is not None:
            synchronize_batchnorm(self.ema.module, info, run.dist_bn)
        done = epoch + 1
        if self.val_loader is not None and (done % max(run.eval_every, 1) == 0 or done == run.epochs):
            self.validate(model, row)
        if self.monitor is not None and done % self.config.monitor.every == 0:
            localization = self.monitor(model, info.device)
            row.update({key: float(value) for key, value in localization.items() if key.startswith(("Max", "Box"))})
        best = self.best.improve(row.get("val_top1", -row["train_loss"]))
        if self.folder is not None and info.is_main:
            if best:
                self.save_weights("best", model)
            self.save_weights("last", model)

    def validate(self, model: nn.Module, row: dict) -> None:
        """Top-1, top-5 and loss on the validation split (and of the EMA) into ``row``."""
        run, device, layout = self.config.train, self.info.device, dict(channels_last=self.config.model.channels_last)
        metrics = validate(model, self.val_loader, device, run.amp, **layout)
        check_skipped(metrics["skipped"], metrics["images"] + metrics["skipped"], "validation images")
        row.update({"val_top1": metrics["top1"], "val_top5": metrics["top5"], "val_loss": metrics["loss"]})
        if self.ema is not None:
            ema_metrics = validate(self.ema.module, self.val_loader, device, run.amp, **layout)
            row.update({"ema_top1": ema_metrics["top1"], "ema_top5": ema_metrics["top5"]})
        row["skipped"] += metrics["skipped"]

    def save_weights(self, name: str, model: nn.Module) -> None:
        """``<name>.safetensors`` (and ``<name>_ema.safetensors``), atomically, loadable by a plain model."""
        save_checkpoint(drop_aux_bn(unwrap(model).state_dict()), self.folder.weights(name))
        if self.ema is not None:
            save_checkpoint(drop_aux_bn(self.ema.module.state_dict()), self.folder.weights(f"{name}_ema"))

    def epoch_line(self, row: dict) -> str:
        """One line per epoch: loss, accuracy, lr, throughput, skipped images."""
        text = f"epoch {row['epoch'] + 1}/{self.config.train.epochs}  loss {row['train_loss']:.4f}"
        if "val_top1" in row:
            text += f"  top1 {row['val_top1']:.2f}  top5 {row['val_top5']:.2f}"
        if "ema_top1" in row:
            text += f"  ema_top1 {row['ema_top1']:.2f}"
        if "MaxBoxAccV2" in row:
            text += f"  MaxBoxAccV2 {row['MaxBoxAccV2']:.2f}"
        return text + f"  lr {row['lr']:.2e}  {row['images_per_s']:.0f} img/s  skipped {row['skipped']}"

    def summary(self, row: dict) -> dict:
        """The last log row, plus ``best_top1`` (the best validation top-1) once validation ran."""
        barrier()  # every process has finished before any returns
        best_top1 = {"best_top1": self.best.score} if "val_top1" in row else {}
        return {**row, **best_top1}


def train(config: SupervisedConfig) -> dict:
    """Train one recipe; returns the last epoch's log row, ``best_top1`` and ``run_dir``.

    Resumes from ``<run_dir>/last.pt`` when it exists and ``train.resume`` is true: model, optimizer, scaler,
    EMA, best score, RNG states and the position inside the epoch, so the final weights equal those of an
    uninterrupted run.
    """
    return launch(SupervisedRecipe(config), config)
