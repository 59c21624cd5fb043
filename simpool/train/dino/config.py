"""The sections of a DINO recipe, each a dataclass that owns its defaults (DINO's ``main_dino.py`` flags).

Defaults are DINO's (Caron et al., ICCV 2021) except ``local_crops_number`` (6, the SimPool paper's).
The ``head`` and ``loss`` sections take theirs from ``DINOHead``'s and ``DINOLoss``'s signatures
(:func:`defaults_from`), so each default is written once. The recipes in ``configs/dino_*.yaml`` set what
the SimPool paper (Appendix C.2) and the official SimPool commands specify (``docs/dino.md``). Read with
:func:`simpool.train.config.load_config`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from ...data.config import default_workers
from ..config import LoopConfig
from .head import DINOHead
from .loss import DINOLoss


def defaults_from(constructor: Callable) -> Callable[[type], type]:
    """A class decorator (under ``@dataclass``): every annotated field without a value takes the default of the
    keyword argument of ``constructor`` of the same name.

    Raises:
        TypeError: a field that is neither given a value nor a keyword argument of ``constructor`` with a default.
    """
    parameters = inspect.signature(constructor).parameters
    defaults = {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}

    def decorate(cls: type) -> type:
        for name in cls.__annotations__:
            if name in vars(cls):
                continue
            if name not in defaults:
                raise TypeError(f"{cls.__name__}.{name} has no default in {constructor.__qualname__}'s signature")
            setattr(cls, name, defaults[name])
        return cls

    return decorate


@dataclass
class DinoModelConfig:
    """Student and teacher: ``simpool.create_model(name, pool, pool_kwargs, num_classes=0, **kwargs)``.

    Both get the same ``pool`` and ``pool_kwargs`` (so the same SimPool gamma; the official code built
    the ViT teacher without it). Only the student gets ``drop_path_rate``.
    """

    name: str = "vit_small_patch16_224"
    pool: str = "simpool"  # "default": timm's own pooling, the paper's baseline (CLS for ViTs, GAP for CNNs)
    pool_kwargs: dict = field(default_factory=dict)  # e.g. {gamma: 1.25}
    kwargs: dict = field(default_factory=dict)  # timm kwargs for both (ViTs: dynamic_img_size is set for them)
    drop_path_rate: float = 0.1  # student only (DINO)

    BOUNDS: ClassVar[dict[str, str]] = {
        "drop_path_rate": "[0, 1)",
    }


@dataclass
@defaults_from(DINOHead)
class DinoHeadConfig:
    """``DINOHead``'s keyword arguments (MLP, L2 normalisation, weight-normalised last layer), its defaults."""

    out_dim: int
    use_bn: bool
    norm_last_layer: bool
    nlayers: int
    hidden_dim: int
    bottleneck_dim: int

    BOUNDS: ClassVar[dict[str, str]] = {
        "out_dim": "[1, inf)",
        "nlayers": "[1, inf)",
        "hidden_dim": "[1, inf)",
        "bottleneck_dim": "[1, inf)",
    }


@dataclass
class DinoDataConfig:
    """An ImageFolder dataset of ``simpool.data.datasets`` seen through ``MultiCropTransform``."""

    dataset: str = "imagefolder"  # imagefolder | imagenet | bench (exported with `simpool bench export`)
    root: str = ""
    # a second export of the same images on other backgrounds (`simpool bench export --variant mixed_rand`, same
    # split, seed and count): the second global crop and every odd local crop come from it (simpool.data.paired)
    pair_root: str = ""
    train_split: str = "train"
    fraction: float = 1.0
    num_workers: int = field(default_factory=default_workers)  # per process; default: the CPUs per local process
    global_crops_scale: tuple[float, ...] = (0.4, 1.0)
    local_crops_scale: tuple[float, ...] = (0.05, 0.4)
    local_crops_number: int = 6
    global_size: int = 224
    local_size: int = 96
    mean: tuple[float, ...] = IMAGENET_DEFAULT_MEAN
    std: tuple[float, ...] = IMAGENET_DEFAULT_STD

    BOUNDS: ClassVar[dict[str, str]] = {
        "fraction": "(0, 1]",
        "num_workers": "[0, inf)",
        "local_crops_number": "[0, inf)",
        "global_size": "[1, inf)",
        "local_size": "[1, inf)",
    }


@dataclass
@defaults_from(DINOLoss)
class DinoLossConfig:
    """``DINOLoss``'s keyword arguments (temperatures, centre momentum) but ``epochs`` (``train.epochs``), its
    defaults."""

    warmup_teacher_temp: float
    teacher_temp: float
    warmup_teacher_temp_epochs: int
    student_temp: float
    center_momentum: float

    BOUNDS: ClassVar[dict[str, str]] = {
        "warmup_teacher_temp": "(0, inf)",
        "teacher_temp": "(0, inf)",
        "warmup_teacher_temp_epochs": "[0, inf)",
        "student_temp": "(0, inf)",
        "center_momentum": "[0, 1]",
    }


@dataclass
class DinoOptimConfig:
    """Optimizer and the per-update cosine schedules; ``lr`` is per 256 images (scaled by batch_size / 256)."""

    opt: str = "adamw"  # adamw | lars | sgd
    lr: float = 5e-4
    min_lr: float = 1e-6
    warmup_epochs: int = 10
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    momentum: float = 0.9  # SGD / LARS
    momentum_teacher: float = 0.996  # EMA momentum, cosine to 1
    clip_grad: float = 3.0  # max gradient norm per parameter tensor; 0: off
    freeze_last_layer: int = 1  # epochs with the head's last layer frozen

    BOUNDS: ClassVar[dict[str, str]] = {
        "lr": "[0, inf)",
        "min_lr": "[0, inf)",
        "warmup_epochs": "[0, inf)",
        "weight_decay": "[0, inf)",
        "weight_decay_end": "[0, inf)",
        "momentum": "[0, 1]",
        "momentum_teacher": "[0, 1]",
        "clip_grad": "[0, inf)",
        "freeze_last_layer": "[0, inf)",
    }


@dataclass
class DinoMonitorConfig:
    """k-NN accuracy of the teacher backbone every ``every`` epochs (train split as memory, val split queried)."""

    every: int = 0  # 0: off
    train_split: str = "train"
    val_split: str = "val"
    k: int = 20
    temperature: float = 0.07
    max_images: int = 10000  # per split, spread evenly over the classes (0: all); shared by the processes
    batch_size: int = 64

    BOUNDS: ClassVar[dict[str, str]] = {
        "every": "[0, inf)",
        "k": "[1, inf)",
        "temperature": "(0, inf)",
        "max_images": "[0, inf)",
        "batch_size": "[1, inf)",
    }


@dataclass
class DinoRunConfig(LoopConfig):
    """The loop (:class:`LoopConfig`); DINO's updates are slow, so the progress bar refreshes more often."""

    log_every: int = 10  # updates between progress-bar refreshes


@dataclass
class DinoConfig:
    """A DINO recipe: ``simpool train-dino --config configs/dino_<arch>.yaml [key=value ...]``."""

    model: DinoModelConfig = field(default_factory=DinoModelConfig)
    head: DinoHeadConfig = field(default_factory=DinoHeadConfig)
    data: DinoDataConfig = field(default_factory=DinoDataConfig)
    loss: DinoLossConfig = field(default_factory=DinoLossConfig)
    optim: DinoOptimConfig = field(default_factory=DinoOptimConfig)
    monitor: DinoMonitorConfig = field(default_factory=DinoMonitorConfig)
    train: DinoRunConfig = field(default_factory=DinoRunConfig)
