"""``simpool probe``'s configuration: typed sections that own their defaults (``config.yaml`` of a run folder).

Positional ``key=value`` overrides on the command line set any field (``probe.head_kwargs={aim: {num_heads: 6}}``,
``train.max_updates=10``); an unknown key is an error naming the valid ones (:mod:`simpool.train.config`).
The names a grid accepts (heads, block modes, optimizers) are checked here, in one line, before any work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ...data.config import DataConfig
from ..config import LoopConfig
from .optim import DEFAULT_LR, OPTIMIZERS

LINEAR = "linear"  # the head without a pool: the CLS token (GAP of the patch tokens without one), or a feature
BLOCK_MODES = ("mean", "concat")


@dataclass
class BackboneConfig:
    """The frozen backbone: :func:`simpool.models.loading.load_model`'s arguments."""

    name: str = "vit_small_patch16_224"
    pool: str = "default"  # the backbone as trained: timm's own (CLS token / GAP), or the pool it was trained with
    pool_kwargs: dict = field(default_factory=dict)
    kwargs: dict = field(default_factory=dict)
    checkpoint: str = ""
    checkpoint_key: str | None = None


@dataclass
class ProbeSettings:
    """The grid and its protocol."""

    heads: tuple[str, ...] = ("linear", "simpool")  # `linear` or any registered pool name
    lrs: tuple[float, ...] = ()  # base learning rates (x batch / 256); empty: 1e-3 for AdamW and SGD, 0.1 for LARS
    opt: str = "adamw"  # adamw | lars (efficient-probing's protocol) | sgd
    weight_decay: float = 0.0
    momentum: float = 0.9  # LARS and SGD
    warmup_epochs: int = 0
    blocks: int = 1  # the last N blocks feed the heads
    blocks_mode: str = "mean"  # mean | concat
    with_cls: bool = False  # the pools also see the prefix tokens (CLS, registers)
    holdout: float = 0.1  # share of the training split held out for the selection
    cache: bool = False  # tokens of the unaugmented training split kept in a float16 memmap
    head_kwargs: dict = field(default_factory=dict)  # {head: {key: value}}, e.g. {simpool: {gamma: 2.0}}
    metadata: str = ""  # wsolevaluation folder of the test split (the training split's beside it); empty: found
    attention_images: int = 0  # test images whose attention is scored (0: all with a box)
    figure_images: int = 4  # rows of attention.png

    BOUNDS: ClassVar[dict[str, str]] = {
        "holdout": "(0, 1)",
        "blocks": "[1, inf)",
        "weight_decay": "[0, inf)",
        "warmup_epochs": "[0, inf)",
        "attention_images": "[0, inf)",
        "figure_images": "[0, inf)",
    }


@dataclass
class ProbeData(DataConfig):
    """The training recipes' data section (timm's augmentation options), without colour jitter: the probing
    protocols' random-resized crop and flip."""

    color_jitter: float = 0.0


@dataclass
class ProbeLoop(LoopConfig):
    epochs: int = 90  # efficient-probing's (and MAE's linear probe's) length


@dataclass
class ProbeConfig:
    """``simpool probe``'s resolved config (``config.yaml`` of the run folder)."""

    model: BackboneConfig = field(default_factory=BackboneConfig)
    data: ProbeData = field(default_factory=ProbeData)
    train: ProbeLoop = field(default_factory=ProbeLoop)
    probe: ProbeSettings = field(default_factory=ProbeSettings)


def valid_heads() -> list[str]:
    """``linear`` and every registered pool name."""
    from ...pooling import list_pools

    return [LINEAR, *list_pools()]


def check_grid(heads: Sequence[str], lrs: Sequence[float]) -> None:
    """Refuse an unknown head name or a learning rate that is not a positive finite number, in one line."""
    if not heads:
        raise ValueError(f"no head given; valid heads: {', '.join(valid_heads())}")
    unknown = [name for name in heads if name not in valid_heads()]
    if unknown:
        raise ValueError(f"unknown head {unknown[0]!r}; valid heads: {', '.join(valid_heads())}")
    if len(set(heads)) != len(heads):
        raise ValueError(f"a head is named twice in {list(heads)}")
    bad = [lr for lr in lrs if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0)]
    if not lrs or bad:
        raise ValueError(f"learning rates must be positive finite numbers, got {list(lrs)}")


def resolved_lrs(settings: ProbeSettings) -> list[float]:
    """The grid's base learning rates: ``probe.lrs``, else the optimizer's default."""
    return list(settings.lrs) or [DEFAULT_LR.get(settings.opt, 1e-3)]


def check_config(config: ProbeConfig) -> None:
    """Every mistake of the grid or the protocol as one ``ValueError`` line, before any work."""
    settings = config.probe
    check_grid(settings.heads, resolved_lrs(settings))
    if settings.opt not in OPTIMIZERS:
        raise ValueError(f"optimizer {settings.opt!r}; valid: {', '.join(OPTIMIZERS)}")
    if settings.blocks_mode not in BLOCK_MODES:
        raise ValueError(f"blocks mode {settings.blocks_mode!r}; valid: {', '.join(BLOCK_MODES)}")
    if not config.data.root:
        raise ValueError("no dataset root: give --data (data.root)")
    for split in (config.data.train_split, config.data.val_split):
        if not (Path(config.data.root) / split).is_dir():
            raise FileNotFoundError(f"no {split!r} split at {Path(config.data.root) / split}")


__all__ = [
    "BLOCK_MODES",
    "LINEAR",
    "BackboneConfig",
    "ProbeConfig",
    "ProbeData",
    "ProbeLoop",
    "ProbeSettings",
    "check_config",
    "check_grid",
    "resolved_lrs",
    "valid_heads",
]
