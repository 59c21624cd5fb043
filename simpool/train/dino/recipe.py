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
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ...data.datasets import StepSampler, create_dataset
from ...models import create_model, save_checkpoint
from ..distributed import DistInfo, barrier
from ..engine import Engine, configure_backends
from ..run import RunFolder, run_locked
from .config import DinoConfig
from .data import MultiCropTransform, collate_crops
from .head import DINOHead, MultiCropWrapper
from .loss import DINOLoss
from .monitor import knn_monitor
from .optim import (
    apply_schedules,
    build_optimizer,
    cancel_last_layer_gradients,
    cosine_schedule,
    update_teacher,
)


def build_backbone(config: DinoConfig, student: bool) -> nn.Module:
    """``create_model(name, pool, pool_kwargs, num_classes=0)``: pooled ``(B, D)``; token models (ViT, EVA, BEiT,
    DeiT...) built with ``dynamic_img_size`` where timm offers it, for the 96 px local crops."""
    model = config.model
    kwargs = dict(model.kwargs)
    if student:
        kwargs["drop_path_rate"] = model.drop_path_rate
    build = lambda **extra: create_model(  # noqa: E731
        model.name, pool=model.pool, pool_kwargs=dict(model.pool_kwargs), num_classes=0, **kwargs, **extra
    )
    if "dynamic_img_size" in kwargs:
        return build()
    try:
        return build(dynamic_img_size=True)
    except TypeError:  # a CNN, or a token model that only takes its own size
        return build()


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
    return run_locked(config, run_name(config), _train)


def _train(config: DinoConfig, info: DistInfo, folder: RunFolder) -> dict:
    run, optim, device = config.train, config.optim, info.device
    if run.num_threads:
        torch.set_num_threads(run.num_threads)
    torch.manual_seed(run.seed)  # the same initial weights on every process
    _, loader = build_loader(config, info)
    updates_per_epoch = loader.sampler.updates_per_epoch

    student, teacher = build_student_teacher(config)
    student, teacher = student.to(device), teacher.to(device)
    configure_backends(device, run.tf32)
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in student.modules())
    if info.distributed and has_bn and device.type == "cuda":  # DINO: synchronised BN in student and teacher
        student = nn.SyncBatchNorm.convert_sync_batchnorm(student)
        teacher = nn.SyncBatchNorm.convert_sync_batchnorm(teacher)
    num_crops = 2 + config.data.local_crops_number
    loss_kwargs = dataclasses.asdict(config.loss)  # the section's fields are DINOLoss's arguments
    dino_loss = DINOLoss(config.head.out_dim, num_crops, epochs=run.epochs, **loss_kwargs).to(device)
    optimizer = build_optimizer(student, optim.opt, optim.momentum)

    lr_schedule = cosine_schedule(
        optim.lr * run.batch_size / 256.0,
        optim.min_lr,
        run.epochs,
        updates_per_epoch,
        warmup_epochs=optim.warmup_epochs,
    )
    wd_schedule = cosine_schedule(optim.weight_decay, optim.weight_decay_end, run.epochs, updates_per_epoch)
    momentum_schedule = cosine_schedule(optim.momentum_teacher, 1.0, run.epochs, updates_per_epoch)
    total_updates = run.epochs * updates_per_epoch
    teacher_without_ddp = teacher  # the EMA target and the exported backbone

    def schedule_index(update: int) -> int:
        return min(update, total_updates - 1)

    teacher_forward = teacher
    if info.distributed and has_bn and device.type == "cuda":  # DINO: the teacher's BN statistics stay in sync
        teacher_forward = wrap_teacher(teacher, [info.device.index])
    engine = Engine(
        student,
        optimizer,
        dino_step(teacher_forward, dino_loss, lambda: engine.counters["epoch"], device),
        info=info,
        amp=run.amp,
        clip_grad=optim.clip_grad,
        clip_mode="per_tensor",
        before_update=lambda update: apply_schedules(
            optimizer, float(lr_schedule[schedule_index(update)]), float(wd_schedule[schedule_index(update)])
        ),
        before_optimizer_step=lambda: cancel_last_layer_gradients(
            engine.module, engine.counters["epoch"], optim.freeze_last_layer
        ),
        after_update=lambda update: update_teacher(
            engine.module, teacher_without_ddp, float(momentum_schedule[schedule_index(update - 1)])
        ),
        desc="dino",
        progress=run.progress,
        log_every=run.log_every,
        checkpoint_every=run.checkpoint_every,
        max_updates=run.max_updates,
        kill_at_update=run.kill_at_update,
    )

    def end_epoch(epoch: int, row: dict) -> None:
        """The schedules' values, the k-NN monitor (every rank embeds its shard), the teacher's weights."""
        step = min(engine.counters["update"], total_updates) - 1
        row.update(
            lr=float(lr_schedule[step]),
            wd=float(wd_schedule[step]),
            teacher_momentum=float(momentum_schedule[step]),
            teacher_temp=float(dino_loss.teacher_temps[min(epoch, run.epochs - 1)]),
        )
        monitor = config.monitor
        if monitor.every and ((epoch + 1) % monitor.every == 0 or epoch + 1 == run.epochs):
            row.update(knn_monitor(teacher_without_ddp.backbone, config, info))
        if info.is_main:
            save_checkpoint(teacher_without_ddp.backbone, folder.weights("teacher"))

    def batches(epoch: int, start_update: int):
        loader.sampler.set_epoch(epoch, start_update)
        return loader

    def summary(row: dict) -> str:
        knn = f"  knn_top1 {row['knn_top1']:.2f}" if "knn_top1" in row else ""
        return f"dino epoch {row['epoch'] + 1}/{run.epochs}  loss {row['train_loss']:.4f}{knn}  lr {row['lr']:.2e}"

    objects = {"student": student, "teacher": teacher, "dino_loss": dino_loss, "optimizer": optimizer}
    row = engine.fit(
        batches,
        run.epochs,
        updates_per_epoch,
        end_epoch=end_epoch,
        summary=summary,
        folder=folder,
        state_objects=objects,
        resume=run.resume,
        seed=run.seed,
        config=config,
    )
    barrier()
    folder.close()
    return {**row, "run_dir": str(folder.path)}


def dino_step(teacher: nn.Module, dino_loss: DINOLoss, epoch: Callable[[], int], device: torch.device):
    """The engine's step: ``crops`` (V tensors ``(B, C, S_v, S_v)``) -> (DINO loss, images).

    The teacher sees the 2 global crops, the student all of them; the loss is computed in float32 with
    autocast off, as DINO does (its einsum in half precision loses about 3e-3 of the gradient). ``weight``
    0 (an empty batch's stand-in under DDP) leaves the centre as it is.
    """

    def step(student: nn.Module, crops: list[torch.Tensor], targets: torch.Tensor, weight: float):
        crops = [crop.to(device, non_blocking=True) for crop in crops]
        teacher_output = teacher(crops[:2])  # (2B, K): only the global crops
        student_output = student(crops)  # (V * B, K)
        with torch.autocast(crops[0].device.type, enabled=False):
            loss = dino_loss(student_output.float(), teacher_output.float(), epoch(), weight=weight)
        return loss, len(targets)

    return step
