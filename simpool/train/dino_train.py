"""DINO self-supervised pre-training with any pool: ``train_dino(config)`` runs one recipe end to end.

The loop is DINO's ``main_dino.py::train_one_epoch`` (Caron et al., ICCV 2021, Apache-2.0), as the
SimPool paper uses it (Appendix C.2): the teacher sees the 2 global crops, the student all crops;
per-update cosine schedules of learning rate, weight decay and teacher momentum; the head's last
layer frozen in the first epoch(s); per-tensor gradient clipping; EMA teacher. Differences from the
official SimPool fork: the teacher gets the same SimPool gamma as the student (the fork built the
ViT teacher without it), backbones are timm models from ``simpool.create_model`` and ViTs use
``dynamic_img_size`` for the local crops. The run folder, checkpoints, DDP set-up and AMP are the
supervised trainer's (``run.py``, ``checkpointing.py``, ``distributed.py``, ``validation.autocast``).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..models import create_model, save_checkpoint
from ..models.families import family_of_name
from .data import StepSampler, create_dataset
from .dino_config import DinoConfig
from .dino_data import MultiCropTransform, collate_crops
from .dino_head import DINOHead, MultiCropWrapper
from .dino_loss import DINOLoss
from .dino_monitor import knn_monitor
from .dino_optim import (
    apply_schedules,
    build_optimizer,
    cancel_last_layer_gradients,
    clip_gradients,
    cosine_schedule,
    update_teacher,
)
from .distributed import DistInfo, all_reduce_sum, barrier, cleanup, init_distributed, unwrap
from .run import RunFolder
from .state import TrainingState
from .validation import autocast


def build_backbone(config: DinoConfig, student: bool) -> nn.Module:
    """``create_model(name, pool, pool_kwargs, num_classes=0)``: pooled ``(B, D)``; ViTs take any image size."""
    model = config.model
    kwargs = dict(model.kwargs)
    if family_of_name(model.name).patch_layout:
        kwargs.setdefault("dynamic_img_size", True)  # 96 px local crops
    if student:
        kwargs["drop_path_rate"] = model.drop_path_rate
    return create_model(model.name, pool=model.pool, pool_kwargs=dict(model.pool_kwargs), num_classes=0, **kwargs)


def build_student_teacher(config: DinoConfig) -> tuple[MultiCropWrapper, MultiCropWrapper]:
    """Student and teacher ``MultiCropWrapper(backbone, DINOHead)``; the teacher starts as a copy, without gradients."""
    student_backbone = build_backbone(config, student=True)
    teacher_backbone = build_backbone(config, student=False)
    head = dataclasses.asdict(config.head)  # the section's fields are DINOHead's arguments
    student = MultiCropWrapper(student_backbone, DINOHead(student_backbone.num_features, **head))
    teacher = MultiCropWrapper(teacher_backbone, DINOHead(student_backbone.num_features, **head))
    teacher.load_state_dict(student.state_dict())
    for param in teacher.parameters():
        param.requires_grad = False
    return student, teacher


def wrap_teacher(teacher: nn.Module, device_ids: list[int] | None) -> DistributedDataParallel:
    """The teacher in DDP, for its synchronised BatchNorm, as DINO does: DDP refuses a module with no
    trainable parameter, so they are wrapped trainable and frozen again (the teacher learns by EMA only)."""
    for param in teacher.parameters():
        param.requires_grad = True
    wrapped = DistributedDataParallel(teacher, device_ids=device_ids)
    for param in teacher.parameters():
        param.requires_grad = False
    return wrapped


def build_loader(config: DinoConfig, info: DistInfo):
    """The multi-crop training set and its loader (each process takes its slice of every global batch)."""
    data, run = config.data, config.train
    transform = MultiCropTransform(
        data.global_crops_scale,
        data.local_crops_scale,
        data.local_crops_number,
        data.global_size,
        data.local_size,
        data.mean,
        data.std,
    )
    dataset = create_dataset(data.dataset, data.root, data.train_split, transform, data.fraction, run.seed)
    if run.batch_size % info.world_size:
        raise ValueError(f"train.batch_size={run.batch_size} is not divisible by the {info.world_size} processes")
    sampler = StepSampler(len(dataset), run.batch_size, info.rank, info.world_size, run.seed)
    loader = DataLoader(
        dataset,
        batch_size=run.batch_size // info.world_size,
        sampler=sampler,
        num_workers=data.num_workers,
        collate_fn=collate_crops,
        generator=torch.Generator().manual_seed(run.seed),
        pin_memory=info.device.type == "cuda",
        persistent_workers=data.num_workers > 0,
    )
    return dataset, loader


def run_name(config: DinoConfig) -> str:
    return config.train.name or f"dino-{config.model.name}-{config.model.pool}"


def train_dino(config: DinoConfig) -> dict:
    """Train one DINO recipe; returns the last epoch's log row plus ``{"run_dir"}``.

    The run folder holds ``config.yaml``, ``log.csv``, ``last.pt`` (student, teacher, optimizer, loss
    centre, scaler, RNG states, position in the epoch) and ``teacher.safetensors``: the teacher
    backbone, which ``create_model(name, pool, pool_kwargs, num_classes=0)`` + ``load_checkpoint`` read.
    Resuming from ``last.pt`` gives the weights an uninterrupted run would have.
    """
    info = init_distributed(config.train.device)
    try:
        return _train(config, info)
    finally:
        cleanup()


def _train(config: DinoConfig, info: DistInfo) -> dict:
    run, optim, device = config.train, config.optim, info.device
    if run.num_threads:
        torch.set_num_threads(run.num_threads)
    torch.manual_seed(run.seed)  # the same initial weights on every process
    folder = RunFolder(Path(run.output) / run_name(config), is_main=info.is_main)
    folder.write_config(config)
    _, loader = build_loader(config, info)
    updates_per_epoch = loader.sampler.updates_per_epoch

    student, teacher = build_student_teacher(config)
    student, teacher = student.to(device), teacher.to(device)
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in student.modules())
    if info.distributed and has_bn and device.type == "cuda":  # DINO: synchronised BN in student and teacher
        student = nn.SyncBatchNorm.convert_sync_batchnorm(student)
        teacher = nn.SyncBatchNorm.convert_sync_batchnorm(teacher)
    num_crops = 2 + config.data.local_crops_number
    loss_kwargs = dataclasses.asdict(config.loss)  # the section's fields are DINOLoss's arguments
    dino_loss = DINOLoss(config.head.out_dim, num_crops, epochs=run.epochs, **loss_kwargs).to(device)
    optimizer = build_optimizer(student, optim.opt, optim.momentum)
    scaler = torch.amp.GradScaler(device.type) if run.amp == "fp16" else None

    lr_schedule = cosine_schedule(
        optim.lr * run.batch_size / 256.0,
        optim.min_lr,
        run.epochs,
        updates_per_epoch,
        warmup_epochs=optim.warmup_epochs,
    )
    wd_schedule = cosine_schedule(optim.weight_decay, optim.weight_decay_end, run.epochs, updates_per_epoch)
    momentum_schedule = cosine_schedule(optim.momentum_teacher, 1.0, run.epochs, updates_per_epoch)

    state = TrainingState(
        folder,
        info,
        {"student": student, "teacher": teacher, "dino_loss": dino_loss, "optimizer": optimizer, "scaler": scaler},
    )
    counters = state.resume(run.resume, device, run.seed)  # a fresh start: drop-path streams differ per process
    epoch, start_update, update = (counters.get(key, 0) for key in ("epoch", "update_in_epoch", "update"))

    if info.distributed:
        ids = [info.local_rank] if device.type == "cuda" else None
        student = DistributedDataParallel(student, device_ids=ids)
        if has_bn and device.type == "cuda":  # DINO: the teacher's BN statistics stay in sync through DDP
            teacher = wrap_teacher(teacher, ids)
    teacher_without_ddp = unwrap(teacher)

    def save_training_state(epoch_: int, update_in_epoch: int) -> None:
        state.save(epoch=epoch_, update_in_epoch=update_in_epoch, update=update)

    row: dict = {}
    total_updates = run.epochs * updates_per_epoch
    while epoch < run.epochs:
        loader.sampler.set_epoch(epoch, start_update)
        totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, updates, skipped
        started = time.perf_counter()
        bar = tqdm(
            total=updates_per_epoch,
            initial=start_update,
            desc=f"dino epoch {epoch}",
            disable=not info.is_main,
            dynamic_ncols=True,
        )
        update_in_epoch, readable = start_update, 0  # readable: updates with a loss, counted on the host
        for crops, _, skipped in loader:
            totals[2] += skipped
            step = min(update, total_updates - 1)
            apply_schedules(optimizer, float(lr_schedule[step]), float(wd_schedule[step]))
            if crops:  # else every image of this batch was unreadable
                crops = [crop.to(device, non_blocking=True) for crop in crops]
                loss = train_step(student, teacher, dino_loss, optimizer, scaler, crops, epoch, config)
                update_teacher(unwrap(student), teacher_without_ddp, float(momentum_schedule[step]))
                totals[0] += loss
                totals[1] += 1
                readable += 1
            update += 1
            update_in_epoch += 1
            bar.update(1)
            if readable and (update % max(run.log_every, 1) == 0 or update_in_epoch == updates_per_epoch):
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr_schedule[step]:.2e}", wd=f"{wd_schedule[step]:.3f}")
            if run.checkpoint_every and update % run.checkpoint_every == 0 and update_in_epoch < updates_per_epoch:
                save_training_state(epoch, update_in_epoch)
            if run.kill_at_update and update == run.kill_at_update:
                os.kill(os.getpid(), signal.SIGKILL)  # testing hook: die like a preempted job
            if run.max_updates and update >= run.max_updates:
                break
        bar.close()
        if update_in_epoch < updates_per_epoch:  # stopped by max_updates: resumable mid-epoch, not logged
            save_training_state(epoch, update_in_epoch)
            break
        elapsed = time.perf_counter() - started
        loss_sum, steps, skipped_total = all_reduce_sum(totals).tolist()
        epoch += 1
        start_update = 0
        step = min(update, total_updates) - 1
        row = {
            "epoch": epoch - 1,
            "update": update,
            "lr": float(lr_schedule[step]),
            "wd": float(wd_schedule[step]),
            "teacher_momentum": float(momentum_schedule[step]),
            "teacher_temp": float(dino_loss.teacher_temps[min(epoch - 1, run.epochs - 1)]),
            "train_loss": loss_sum / max(steps, 1),
            "skipped": int(skipped_total),
            "time_s": elapsed,
        }
        monitor = config.monitor
        if monitor.every and (epoch % monitor.every == 0 or epoch == run.epochs):
            if info.is_main:
                row.update(knn_monitor(teacher_without_ddp.backbone, config, device))
            barrier()
        if info.is_main:
            save_checkpoint(teacher_without_ddp.backbone, folder.weights("teacher"))
        save_training_state(epoch, 0)
        folder.log(row, step=epoch)
        if info.is_main:
            knn = f"  knn_top1 {row['knn_top1']:.2f}" if "knn_top1" in row else ""
            print(f"dino epoch {epoch}/{run.epochs}  loss {row['train_loss']:.4f}{knn}  lr {row['lr']:.2e}")
        if run.max_updates and update >= run.max_updates:
            break
    barrier()
    folder.close()
    return {**row, "run_dir": str(folder.path)}


def train_step(
    student: nn.Module,
    teacher: nn.Module,
    dino_loss: DINOLoss,
    optimizer: torch.optim.Optimizer,
    scaler,
    crops: list[torch.Tensor],
    epoch: int,
    config: DinoConfig,
) -> float:
    """One update of the student: forward both, DINO loss, backward, clip, freeze the last layer, step."""
    device = crops[0].device
    with autocast(device, config.train.amp):
        teacher_output = teacher(crops[:2])  # (2B, K): only the global crops
        student_output = student(crops)  # (V * B, K)
        loss = dino_loss(student_output.float(), teacher_output.float(), epoch)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"DINO loss is {loss.item()} at epoch {epoch}; lower optim.lr or use train.amp=none")
    optimizer.zero_grad(set_to_none=True)
    clip = config.optim.clip_grad
    if scaler is not None:
        scaler.scale(loss).backward()
        if clip:
            scaler.unscale_(optimizer)
            clip_gradients(student, clip)
        cancel_last_layer_gradients(student, epoch, config.optim.freeze_last_layer)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if clip:
            clip_gradients(student, clip)
        cancel_last_layer_gradients(student, epoch, config.optim.freeze_last_layer)
        optimizer.step()
    return loss.item()
