"""Supervised training with timm's machinery: ``train(config)`` runs one recipe end to end.

The loop is timm ``train.py``'s (``OFFICIAL_CODE.md`` §3.1, the paper's Appendix C.2): a model from
``simpool.create_model``, ``create_optimizer_v2``, ``create_scheduler_v2`` stepped per update, Mixup /
CutMix with soft-target CE (else label-smoothed CE), ``create_transform`` augmentation, ``ModelEmaV3``,
gradient accumulation, AMP, channels_last, optional ``torch.compile``, DDP under ``torchrun``.
The run folder, checkpoints and process-group helpers live in their own modules for DINO to reuse.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from timm.data import Mixup, create_transform
from timm.layers import convert_splitbn_model
from timm.loss import JsdCrossEntropy, LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3
from torch import nn
from torch.utils.data import DataLoader

from ...data.datasets import ShardSampler, StepSampler, collate_skip, create_dataset
from ...models import create_model, save_checkpoint
from ...models.checkpoint import load_pretrained
from ..distributed import (
    DIST_BN_MODES,
    DistInfo,
    barrier,
    synchronize_batchnorm,
    unwrap,
)
from ..engine import Engine, configure_backends
from ..run import RunFolder, run_locked
from ..validation import validate
from .aug_splits import check_aug_splits, drop_aux_bn, split_major, split_transform
from .config import SupervisedConfig
from .monitor import AttentionMonitor


def build_transforms(config: SupervisedConfig):
    """timm ``create_transform`` for training (RandAugment, random erasing...) and evaluation (resize, crop)."""
    data = config.data
    common = dict(
        input_size=(data.in_chans, data.img_size, data.img_size),
        interpolation=data.interpolation,
        mean=tuple(data.mean),
        std=tuple(data.std),
    )
    train_kwargs = dict(
        scale=tuple(data.scale),
        hflip=data.hflip,
        color_jitter=data.color_jitter,
        auto_augment=data.auto_augment,
        re_prob=data.reprob,
        re_mode=data.remode,
        **common,
    )
    if data.aug_splits:  # (S, C, H, W) per image: a clean view and S - 1 augmented ones
        train = split_transform(data.aug_splits, data.resplit, **train_kwargs)
    else:
        train = create_transform(is_training=True, **train_kwargs)
    evaluation = create_transform(is_training=False, crop_pct=data.crop_pct, **common)
    return train, evaluation


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
    train_tf, eval_tf = build_transforms(config)
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


def run_name(config: SupervisedConfig) -> str:
    return config.train.name or f"{config.model.name}-{config.model.pool}"


def train(config: SupervisedConfig) -> dict:
    """Train one recipe; returns the last epoch's log row plus ``{"run_dir"}``.

    Resumes from ``<run_dir>/last.pt`` when it exists and ``train.resume`` is true: model, optimizer,
    scheduler, scaler, EMA, RNG states and the position inside the epoch, so the final weights equal
    those of an uninterrupted run.
    """
    return run_locked(config, run_name(config), _train)


def _train(config: SupervisedConfig, info: DistInfo, folder: RunFolder) -> dict:
    run, device = config.train, info.device
    mixing = config.mixup.mixup > 0 or config.mixup.cutmix > 0
    check_aug_splits(config.data.aug_splits, config.data.jsd, config.model.split_bn, mixing)
    if run.dist_bn not in DIST_BN_MODES:
        raise ValueError(f"train.dist_bn={run.dist_bn!r}: use one of {DIST_BN_MODES}")
    if run.num_threads:
        torch.set_num_threads(run.num_threads)
    torch.manual_seed(run.seed)  # the same initial weights on every process
    train_set, train_loader, val_loader = build_loaders(config, info)
    num_classes = len(train_set.classes)

    model = create_model(
        config.model.name,
        pool=config.model.pool,
        pool_kwargs=config.model.pool_kwargs,
        num_classes=num_classes,
        in_chans=config.data.in_chans,
        **config.model.kwargs,
    )
    if config.model.checkpoint:  # fine-tuning: every weight but the classifier's from the checkpoint
        load_pretrained(model, config.model.checkpoint, key=config.model.checkpoint_key)
    if config.model.split_bn:  # after loading: a pretrained checkpoint has no aux_bn to fill them
        model = convert_splitbn_model(model, num_splits=config.data.aug_splits)
    model = model.to(device)
    configure_backends(device, run.tf32)
    if config.model.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = create_optimizer_v2(
        model,
        opt=config.optim.opt,
        lr=config.optim.lr,
        weight_decay=config.optim.weight_decay,
        momentum=config.optim.momentum,
        **config.optim.kwargs,
    )
    updates_per_epoch = train_loader.sampler.updates_per_epoch
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched=config.sched.sched,
        num_epochs=run.epochs,
        warmup_epochs=config.sched.warmup_epochs,
        warmup_lr=config.sched.warmup_lr,
        min_lr=config.sched.min_lr,
        cooldown_epochs=config.sched.cooldown_epochs,
        step_on_epochs=not config.sched.on_updates,
        updates_per_epoch=updates_per_epoch,
    )
    ema = ModelEmaV3(model, decay=config.ema.decay, use_warmup=config.ema.warmup) if config.ema.enabled else None
    mixup = build_mixup(config, num_classes)
    criterion = build_criterion(config, mixup)
    monitor = build_monitor(config) if info.is_main else None
    engine = Engine(
        model,
        optimizer,
        supervised_step(criterion, mixup, config.model.channels_last, device),
        info=info,
        amp=run.amp,
        accum_steps=run.accum_steps,
        clip_grad=config.optim.clip_grad,
        scheduler=scheduler,
        schedule_on="update" if config.sched.on_updates else "epoch",
        ema=ema,
        compile=config.model.compile,
        sync_batchnorm=config.model.sync_bn,
        desc="train",
        progress=run.progress,
        log_every=run.log_every,
        checkpoint_every=run.checkpoint_every,
        max_updates=run.max_updates,
        kill_at_update=run.kill_at_update,
    )
    engine.counters["best"] = -math.inf

    def end_epoch(epoch: int, row: dict) -> None:
        """dist-bn, validation (and of the EMA), the attention monitor, best and last weights."""
        synchronize_batchnorm(engine.model, info, run.dist_bn)
        if ema is not None:
            synchronize_batchnorm(ema.module, info, run.dist_bn)
        done = epoch + 1
        if val_loader is not None and (done % max(run.eval_every, 1) == 0 or done == run.epochs):
            layout = dict(channels_last=config.model.channels_last)
            metrics = validate(engine.model, val_loader, device, run.amp, **layout)
            row.update({"val_top1": metrics["top1"], "val_top5": metrics["top5"], "val_loss": metrics["loss"]})
            if ema is not None:
                ema_metrics = validate(
                    ema.module, val_loader, device, run.amp, channels_last=config.model.channels_last
                )
                row.update({"ema_top1": ema_metrics["top1"], "ema_top5": ema_metrics["top5"]})
            row["skipped"] += metrics["skipped"]
        if monitor is not None and done % config.monitor.every == 0:
            localization = monitor(engine.model, device)
            row.update({key: float(value) for key, value in localization.items() if key.startswith(("Max", "Box"))})
        score = row.get("val_top1", -row["train_loss"])
        if score > engine.counters["best"]:
            engine.counters["best"] = score
            if info.is_main:
                save_weights(folder, "best", engine.module, ema)
        if info.is_main:
            save_weights(folder, "last", engine.module, ema)

    def batches(epoch: int, start_update: int):
        train_loader.sampler.set_epoch(epoch, start_update)
        return train_loader

    row = engine.fit(
        batches,
        run.epochs,
        train_loader.sampler.updates_per_epoch,
        end_epoch=end_epoch,
        summary=lambda row: summary_line(row, run.epochs),
        folder=folder,
        # not the scheduler: rebuilt from the config, so that a resume may extend train.epochs (timm keeps the
        # run length in its state); the engine sets the resumed update's learning rate from it
        state_objects={"model": model, "optimizer": optimizer, "ema": ema},
        resume=run.resume,
        seed=run.seed,
        config=config,
    )
    barrier()
    folder.close()
    best_top1 = {"best_top1": engine.counters["best"]} if "val_top1" in row else {}  # the best validation top-1
    return {**row, **best_top1, "run_dir": str(folder.path)}


def supervised_step(criterion: nn.Module, mixup: Mixup | None, channels_last: bool, device: torch.device):
    """The engine's step: ``images (B, C, H, W)``, ``targets (B,)`` -> (mean loss, inputs it covers).

    Augmentation splits come as ``(B, S, C, H, W)`` and are trained as ``S * B`` inputs (timm's layout);
    timm's Mixup pairs samples, so one is dropped from an odd batch (after a skipped image).
    """

    def step(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, weight: float):
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        if images.ndim == 5:  # augmentation splits (B, S, C, H, W): S * B inputs, view-major, targets repeated
            images, targets = split_major(images, targets)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        soft = targets
        if mixup is not None:
            if len(targets) % 2:
                images, targets = images[:-1], targets[:-1]
            images, soft = mixup(images, targets)
        return criterion(model(images), soft), len(targets)

    return step


def save_weights(folder: RunFolder, name: str, model: nn.Module, ema: ModelEmaV3 | None) -> None:
    """``<name>.safetensors`` (and ``<name>_ema.safetensors``), atomically."""
    save_checkpoint(drop_aux_bn(unwrap(model).state_dict()), folder.weights(name))  # loadable by a plain model
    if ema is not None:
        save_checkpoint(drop_aux_bn(ema.module.state_dict()), folder.weights(f"{name}_ema"))


def summary_line(row: dict, epochs: int) -> str:
    """One line per epoch: loss, accuracy, lr, throughput, skipped images."""
    text = f"epoch {row['epoch'] + 1}/{epochs}  loss {row['train_loss']:.4f}"
    if "val_top1" in row:
        text += f"  top1 {row['val_top1']:.2f}  top5 {row['val_top5']:.2f}"
    if "ema_top1" in row:
        text += f"  ema_top1 {row['ema_top1']:.2f}"
    if "MaxBoxAccV2" in row:
        text += f"  MaxBoxAccV2 {row['MaxBoxAccV2']:.2f}"
    return text + f"  lr {row['lr']:.2e}  {row['images_per_s']:.0f} img/s  skipped {row['skipped']}"
