"""DINO self-supervised pre-training with any pool: :class:`DinoRecipe`, run by ``train_dino(config)``.

The loop is DINO's ``main_dino.py::train_one_epoch`` (Caron et al., ICCV 2021, Apache-2.0), as the
SimPool paper uses it (Appendix C.2): the teacher sees the 2 global crops, the student all crops;
per-update cosine schedules of learning rate, weight decay and teacher momentum; the head's last
layer frozen in the first epoch(s); per-tensor gradient clipping; EMA teacher. Differences from the
official SimPool fork: the teacher gets the same SimPool gamma as the student (the fork built the
ViT teacher without it), backbones are timm models from ``simpool.create_model`` and ViTs use
``dynamic_img_size`` for the local crops. The loop itself (AMP, DDP, checkpoints, exact resume) is
:class:`~simpool.train.engine.Engine`'s; the run folder's lock and the error handling are
:func:`~simpool.train.launch.launch`'s.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import torch
from timm.layers import convert_sync_batchnorm
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ...data.datasets import StepSampler, create_dataset
from ...data.paired import PairedViews
from ...models import create_model, save_checkpoint
from ..distributed import DistInfo, barrier
from ..engine import configure_backends
from ..launch import launch
from ..recipe import Loop, Parts, Recipe
from ..run import RunFolder
from .config import DinoConfig
from .data import MultiCropTransform, collate_crops
from .head import DINOHead, MultiCropWrapper
from .loss import DINOLoss
from .monitor import KnnMonitor
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
    build = functools.partial(
        create_model, model.name, pool=model.pool, pool_kwargs=dict(model.pool_kwargs), num_classes=0, **kwargs
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


def training_set(config: DinoConfig, transform: MultiCropTransform):
    """``data.root``'s training split through ``transform``; with ``data.pair_root``, each image paired with its
    rendering there (:class:`~simpool.data.paired.PairedViews`), so that the views share the object only."""
    data, seed = config.data, config.train.seed
    if not data.pair_root:
        return create_dataset(data.dataset, data.root, data.train_split, transform, data.fraction, seed)
    if data.fraction < 1.0:
        raise ValueError("data.pair_root takes whole splits: leave data.fraction at 1 (export fewer images instead)")
    folders = [Path(root) / data.train_split for root in (data.root, data.pair_root)]
    missing = [str(folder) for folder in folders if not folder.is_dir()]
    if missing:
        raise ValueError(f"data.pair_root pairs two exported ImageFolders; no folder at {', '.join(missing)}")
    return PairedViews(*folders, transform, seed)


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
    dataset = training_set(config, transform)
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


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules())


class DinoRecipe(Recipe):
    """One DINO run: the student is what the engine trains, the teacher its EMA (``after_update``).

    The run folder (``<train.output>/<run_name>``) holds ``config.yaml``, ``log.csv``, ``last.pt`` (student,
    teacher, optimizer, loss centre, scaler, RNG states, position in the epoch) and ``teacher.safetensors``: the
    teacher backbone, which ``create_model(name, pool, pool_kwargs, num_classes=0)`` + ``load_checkpoint`` read.
    Resuming from ``last.pt`` gives the weights an uninterrupted run would have.
    """

    name = "dino"

    def __init__(self, config: DinoConfig):
        self.config = config
        self.loop = Loop.from_config(config.train)
        self.run_dir = Path(config.train.output) / run_name(config)
        self.folder: RunFolder | None = None
        self.epoch = 0  # the epoch being trained (the loss's teacher temperature, the frozen last layer)
        self.update = 0  # updates done (the schedules' values in the log row)

    # ------------------------------------------------------------------------------------------------ set-up
    def build(self, info: DistInfo) -> Parts:
        """Loader, student and teacher (SyncBatchNorm under DDP on CUDA, as DINO), loss, optimizer, schedules."""
        config, run, device = self.config, self.config.train, info.device
        self.info = info
        if run.num_threads:
            torch.set_num_threads(run.num_threads)
        torch.manual_seed(run.seed)  # the same initial weights on every process
        _, self.loader = build_loader(config, info)
        self.updates_per_epoch = self.loader.sampler.updates_per_epoch
        student, teacher = build_student_teacher(config)
        student, teacher = student.to(device), teacher.to(device)
        configure_backends(device, run.tf32)
        self.teacher_forward = teacher
        if info.distributed and device.type == "cuda" and has_batchnorm(student):
            # DINO: synchronised BN in student and teacher, and the teacher's statistics kept in sync by DDP
            student, teacher = convert_sync_batchnorm(student), convert_sync_batchnorm(teacher)
            self.teacher_forward = wrap_teacher(teacher, [device.index])
        self.knn_monitor = KnnMonitor(config, info)  # its subset chosen at the first call, kept for the run
        self.student, self.teacher = student, teacher  # the bare modules: the EMA pair and the exported backbone
        num_crops = 2 + config.data.local_crops_number
        loss_kwargs = dataclasses.asdict(config.loss)  # the section's fields are DINOLoss's arguments
        self.dino_loss = DINOLoss(config.head.out_dim, num_crops, epochs=run.epochs, **loss_kwargs).to(device)
        self.optimizer = build_optimizer(student, config.optim.opt, config.optim.momentum)
        self.build_schedules()
        return Parts(
            model=student,
            optimizer=self.optimizer,
            epochs=run.epochs,
            updates_per_epoch=self.updates_per_epoch,
            clip_grad=config.optim.clip_grad,
            clip_mode="per_tensor",
            state={"student": student, "teacher": teacher, "dino_loss": self.dino_loss, "optimizer": self.optimizer},
        )

    def build_schedules(self) -> None:
        """One value per update of the learning rate (scaled by ``batch_size / 256``, after a linear warm-up),
        the weight decay and the teacher momentum (to 1), each a cosine over the run."""
        optim, run, per_epoch = self.config.optim, self.config.train, self.updates_per_epoch
        base_lr = optim.lr * run.batch_size / 256.0
        self.lr_schedule = cosine_schedule(
            base_lr, optim.min_lr, run.epochs, per_epoch, warmup_epochs=optim.warmup_epochs
        )
        self.wd_schedule = cosine_schedule(optim.weight_decay, optim.weight_decay_end, run.epochs, per_epoch)
        self.momentum_schedule = cosine_schedule(optim.momentum_teacher, 1.0, run.epochs, per_epoch)

    def scheduled(self, schedule: np.ndarray, update: int) -> float:
        """``schedule``'s value at ``update`` (counted from 0; past the end: its last value)."""
        return float(schedule[min(update, len(schedule) - 1)])

    # ------------------------------------------------------------------------------------------------ training
    def batches(self, epoch: int, start_update: int) -> DataLoader:
        self.epoch, self.update = epoch, epoch * self.updates_per_epoch + start_update
        self.loader.sampler.set_epoch(epoch, start_update)
        return self.loader

    def step(self, model: nn.Module, crops: list[torch.Tensor], targets: torch.Tensor, weight: float):
        """``crops`` (V tensors ``(B, C, S_v, S_v)``) -> (DINO loss, images).

        The teacher sees the 2 global crops, the student all of them; the heads' last layers and the loss run
        in float32 with autocast off (:class:`DINOHead`, :class:`DINOLoss`). ``weight`` 0 (an empty batch's
        stand-in under DDP) leaves the centre as it is.
        """
        crops = [crop.to(self.info.device, non_blocking=True) for crop in crops]
        teacher_output = self.teacher_forward(crops[:2])  # (2B, K): only the global crops
        student_output = model(crops)  # (V * B, K)
        return self.dino_loss(student_output, teacher_output, self.epoch, weight=weight), len(targets)

    def before_update(self, update: int) -> None:
        apply_schedules(
            self.optimizer, self.scheduled(self.lr_schedule, update), self.scheduled(self.wd_schedule, update)
        )

    def before_optimizer_step(self) -> None:
        cancel_last_layer_gradients(self.student, self.epoch, self.config.optim.freeze_last_layer)

    def after_update(self, update: int) -> None:
        update_teacher(self.student, self.teacher, self.scheduled(self.momentum_schedule, update - 1))
        self.update = update

    # ------------------------------------------------------------------------------------------------ epoch ends
    def end_epoch(self, epoch: int, row: dict, model: nn.Module) -> None:
        """The schedules' values at the last update, the k-NN monitor (every rank embeds its shard), the
        teacher's weights."""
        last, run = self.update - 1, self.config.train
        row.update(
            lr=self.scheduled(self.lr_schedule, last),
            wd=self.scheduled(self.wd_schedule, last),
            teacher_momentum=self.scheduled(self.momentum_schedule, last),
            teacher_temp=float(self.dino_loss.teacher_temps[min(epoch, run.epochs - 1)]),
        )
        monitor = self.config.monitor
        if monitor.every and ((epoch + 1) % monitor.every == 0 or epoch + 1 == run.epochs):
            row.update(self.knn_monitor(self.teacher.backbone))
        if self.folder is not None and self.info.is_main:
            save_checkpoint(self.teacher.backbone, self.folder.weights("teacher"))

    def epoch_line(self, row: dict) -> str:
        knn = f"  knn_top1 {row['knn_top1']:.2f}" if "knn_top1" in row else ""
        epochs = self.config.train.epochs
        return f"dino epoch {row['epoch'] + 1}/{epochs}  loss {row['train_loss']:.4f}{knn}  lr {row['lr']:.2e}"

    def summary(self, row: dict) -> dict:
        """The last log row, once every process is done (rank 0 wrote ``teacher.safetensors``)."""
        barrier()
        return dict(row)


def train_dino(config: DinoConfig) -> dict:
    """Train one DINO recipe (:class:`DinoRecipe`); returns the last epoch's log row plus ``{"run_dir"}``."""
    return launch(DinoRecipe(config), config)
