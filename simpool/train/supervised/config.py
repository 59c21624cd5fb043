"""The sections of a supervised training recipe, each a dataclass that owns its defaults.

Defaults follow timm's ``train.py`` where the paper is silent; each recipe in ``configs/`` says which
values the paper (Appendix C.2) specifies. Names are timm's flags (``opt``, ``sched``, ``mixup``,
``reprob``, ``smoothing``, ``model_ema_decay`` -> ``ema.decay``). The ``data`` section is
:class:`simpool.data.config.DataConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ...data.config import DataConfig
from ..config import LoopConfig


@dataclass
class ModelConfig:
    """``simpool.create_model(name, pool, pool_kwargs, num_classes, **kwargs)`` plus memory layout."""

    name: str = "vit_small_patch16_224"
    pool: str = "simpool"  # "default" is timm's own pooling: the paper's baseline (GAP for CNNs, CLS for ViTs)
    pool_kwargs: dict = field(default_factory=dict)  # e.g. {gamma: 2.0}; SimPool's family default when unset
    kwargs: dict = field(default_factory=dict)  # timm kwargs: drop_rate, drop_path_rate, img_size, ...
    channels_last: bool = False
    compile: bool = False  # torch.compile after the DDP wrapping, as timm's train.py does
    sync_bn: bool = False  # SyncBatchNorm under DDP (CNN recipes: BatchNorm statistics over the global batch)
    checkpoint: str = ""  # initial weights for fine-tuning (ours or official); the classifier starts afresh
    checkpoint_key: str | None = None  # entry of the checkpoint dict: state_dict_ema, teacher, student, ...
    split_bn: bool = False  # timm --split-bn: BatchNorms keep the augmented views' statistics apart (aug_splits)


@dataclass
class MixupConfig:
    """timm's ``Mixup``; with ``mixup == cutmix == 0`` it is off and the loss is label-smoothed CE."""

    mixup: float = 0.0
    cutmix: float = 0.0
    prob: float = 1.0
    switch_prob: float = 0.5
    mode: str = "batch"
    smoothing: float = 0.1  # label smoothing (timm default)

    BOUNDS: ClassVar[dict[str, str]] = {
        "mixup": "[0, inf)",
        "cutmix": "[0, inf)",
        "prob": "[0, 1]",
        "switch_prob": "[0, 1]",
        "smoothing": "[0, 1)",
    }


@dataclass
class OptimConfig:
    """``timm.optim.create_optimizer_v2`` (weight decay skips biases and norms)."""

    opt: str = "adamw"
    lr: float = 5e-4
    weight_decay: float = 0.05
    momentum: float = 0.9
    clip_grad: float | None = None
    kwargs: dict = field(default_factory=dict)  # more create_optimizer_v2 arguments (betas, layer_decay...)

    BOUNDS: ClassVar[dict[str, str]] = {
        "lr": "[0, inf)",  # below sched.min_lr or sched.warmup_lr: refused by SupervisedRecipe.check
        "weight_decay": "[0, inf)",
        "momentum": "[0, 1]",
        "clip_grad": "[0, inf)",
    }


@dataclass
class SchedConfig:
    """``timm.scheduler.create_scheduler_v2``: warm-up then cosine, stepped per update by default."""

    sched: str = "cosine"
    warmup_epochs: int = 5
    warmup_lr: float = 1e-6
    min_lr: float = 1e-5
    cooldown_epochs: int = 0
    on_updates: bool = True  # step the schedule every optimizer update (else every epoch)

    BOUNDS: ClassVar[dict[str, str]] = {
        "warmup_epochs": "[0, inf)",
        "warmup_lr": "[0, inf)",
        "min_lr": "[0, inf)",
        "cooldown_epochs": "[0, inf)",
    }


@dataclass
class EmaConfig:
    """``timm.utils.ModelEmaV3`` of the weights, validated beside the model when enabled."""

    enabled: bool = False
    decay: float = 0.9998
    warmup: bool = False

    BOUNDS: ClassVar[dict[str, str]] = {
        "decay": "[0, 1]",
    }


@dataclass
class MonitorConfig:
    """Attention monitor: MaxBoxAccV2 of attention maps on held-out images with boxes every N epochs."""

    every: int = 0  # epochs between measurements; 0: off
    source: str = "bench"  # bench (rendered test split) | wsol (a wsolevaluation-format folder)
    max_images: int = 1000  # the first images of the held-out set (0: all)
    metadata: str = ""  # wsol: folder with image_ids.txt, image_sizes.txt, localization.txt
    images: str = ""  # wsol: the image root those ids are relative to

    BOUNDS: ClassVar[dict[str, str]] = {
        "every": "[0, inf)",
        "max_images": "[0, inf)",
    }


@dataclass
class RunConfig(LoopConfig):
    """The loop (:class:`LoopConfig`) plus gradient accumulation and validation."""

    accum_steps: int = 1  # gradient accumulation: micro-batch = batch_size / (world_size * accum_steps)
    eval_batch_size: int = 0  # per process; 0: the training micro-batch
    eval_every: int = 1  # epochs
    dist_bn: str = (
        ""  # timm --dist-bn at each epoch end under DDP: "" (rank 0's BatchNorm statistics) | reduce | broadcast
    )

    BOUNDS: ClassVar[dict[str, str]] = {
        **LoopConfig.BOUNDS,
        "accum_steps": "[1, inf)",
        "eval_batch_size": "[0, inf)",
        "eval_every": "[0, inf)",
    }


@dataclass
class SupervisedConfig:
    """A supervised training recipe: ``simpool train --config configs/<recipe>.yaml [key=value ...]``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    mixup: MixupConfig = field(default_factory=MixupConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    train: RunConfig = field(default_factory=RunConfig)
