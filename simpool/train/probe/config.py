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
BLOCK_MODES = ("mean", "concat", "avg")
ALL = "_all"  # a pool's name with it: the pool also sees the prefix tokens (efficient-probing's `_all` heads)


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
    weight_decays: tuple[float, ...] = (0.0,)  # every head trains at each (a grid, as lrs)
    momentum: float = 0.9  # LARS and SGD
    warmup_epochs: int = 0
    blocks: int = 1  # the last N blocks feed the heads
    block_indices: tuple[int, ...] = ()  # or these blocks (negative: from the end), instead of the last N
    blocks_mode: str = "mean"  # mean (of the normed outputs) | concat | avg (AIM: the norm of the mean)
    with_cls: bool = False  # the pools also see the prefix tokens (CLS, registers)
    holdout: float = 0.1  # share of the training split held out for the selection
    cache: bool = False  # tokens of the unaugmented training split kept in a float16 memmap
    # {head: {key: value}}; a list value is varied (a grid): {ep: {num_queries: [8, 16]}}
    head_kwargs: dict = field(default_factory=dict)
    # more test sets after data.val_split: folders under data.root; an IN-9 export folder gives its variants
    test_splits: tuple[str, ...] = ()
    knn_k: int = 20  # the k-NN row (DINO's protocol, T = 0.07) on the linear head's features; 0: none
    shots: tuple[int, ...] = ()  # few-shot: the grid trained again on k images per class, for each k
    tries: int = 1  # seeded subsets per k (mean and std over them)
    metadata: str = ""  # wsolevaluation folder of the test split (the training split's beside it); empty: found
    attention_images: int = 0  # test images whose attention is scored (0: all with a box)
    figure_images: int = 4  # rows of attention.png

    BOUNDS: ClassVar[dict[str, str]] = {
        "holdout": "(0, 1)",
        "blocks": "[1, inf)",
        "knn_k": "[0, inf)",
        "tries": "[1, inf)",
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
    """``linear``, every registered pool name and alias (each also as ``<pool>_all``: :func:`head_pool`)."""
    from ...pooling import list_pools

    return [LINEAR, *list_pools(aliases=True)]


def head_pool(name: str) -> tuple[str, bool]:
    """``(pool name, sees the prefix tokens)`` of a head's name: ``simpool_all`` -> ``("simpool", True)``."""
    if name.endswith(ALL) and name[: -len(ALL)] in valid_heads()[1:]:
        return name[: -len(ALL)], True
    return name, False


def blocks_of(settings: ProbeSettings) -> int | list[int]:
    """What feeds the heads: ``probe.block_indices`` when given, else the last ``probe.blocks``."""
    return list(settings.block_indices) or settings.blocks


def duplicates(values: Sequence) -> list:
    """The values given more than once, in their first order."""
    seen, repeated = [], []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.append(value)
    return repeated


def grid_options(options: dict) -> tuple[dict, dict]:
    """A head's options split into ``(fixed, varied)``: a list value is a grid of values, any other is fixed."""
    fixed = {key: value for key, value in options.items() if not isinstance(value, (list, tuple))}
    varied = {key: list(value) for key, value in options.items() if isinstance(value, (list, tuple))}
    return fixed, varied


def _check_values(what: str, values: Sequence, low_ok: bool) -> None:
    """Numbers, finite, positive (or ``>= 0`` with ``low_ok``), none twice: else one line naming them."""
    bad = [v for v in values if not (isinstance(v, (int, float)) and math.isfinite(v) and (v > 0 or low_ok and v == 0))]
    if not values or bad:
        kind = "non-negative" if low_ok else "positive"
        raise ValueError(f"{what} must be {kind} finite numbers, got {list(values)}")
    if duplicates(values):
        raise ValueError(f"{what} {list(values)} name {duplicates(values)[0]!r} twice: each value trains once")


def check_grid(
    heads: Sequence[str],
    lrs: Sequence[float],
    weight_decays: Sequence[float] = (0.0,),
    head_kwargs: dict | None = None,
    lr_option: str = "probe.lrs, --lr",
) -> None:
    """Refuse an unknown head name, a learning rate that is not a positive finite number, a negative weight decay,
    options of a head not in the grid, or any value given twice, in one line naming the option (``lr_option``: how
    the learning rates were given)."""
    if not heads:
        raise ValueError(f"no head given; valid heads: {', '.join(valid_heads())}")
    unknown = [name for name in heads if head_pool(name)[0] not in valid_heads()]
    if unknown:
        raise ValueError(
            f"unknown head {unknown[0]!r}; valid heads: {', '.join(valid_heads())} "
            f"(a pool's name with {ALL}: it also sees the CLS token)"
        )
    if duplicates(heads):
        raise ValueError(f"a head is named twice in probe.heads (--heads) {list(heads)}")
    _check_values(f"learning rates ({lr_option})", lrs, low_ok=False)
    _check_values("weight decays (probe.weight_decays, --weight-decay)", weight_decays, low_ok=True)
    head_kwargs = head_kwargs or {}
    strays = sorted(set(head_kwargs) - set(heads))
    if strays:
        raise ValueError(f"head options for {strays[0]!r}, which is not among the heads {list(heads)}")
    for head, options in head_kwargs.items():
        for key, values in grid_options(options)[1].items():
            if not values or duplicates(values):
                raise ValueError(f"head option {head}.{key}={values}: give each value once (a list is a grid)")


def resolved_lrs(settings: ProbeSettings) -> list[float]:
    """The grid's base learning rates: ``probe.lrs``, else the optimizer's default."""
    return list(settings.lrs) or [DEFAULT_LR.get(settings.opt, 1e-3)]


def check_config(config: ProbeConfig) -> None:
    """Every mistake of the grid or the protocol as one ``ValueError`` line, before any work."""
    settings = config.probe
    check_grid(settings.heads, resolved_lrs(settings), settings.weight_decays, settings.head_kwargs)
    if settings.opt not in OPTIMIZERS:
        raise ValueError(f"optimizer {settings.opt!r}; valid: {', '.join(OPTIMIZERS)}")
    if settings.blocks_mode not in BLOCK_MODES:
        raise ValueError(f"blocks mode {settings.blocks_mode!r}; valid: {', '.join(BLOCK_MODES)}")
    if not config.data.root:
        raise ValueError("no dataset root: give --data (data.root)")
    if any(not isinstance(k, int) or k < 1 for k in settings.shots) or duplicates(settings.shots):
        raise ValueError(f"shots (probe.shots, --shots) must be positive integers, each once: {list(settings.shots)}")
    splits = [config.data.val_split, *settings.test_splits]
    if duplicates(splits):
        raise ValueError(f"test splits (--test-split) {splits} name {duplicates(splits)[0]!r} twice")
    for split in (config.data.train_split, *splits):
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
    "ALL",
    "blocks_of",
    "check_grid",
    "duplicates",
    "grid_options",
    "head_pool",
    "resolved_lrs",
    "valid_heads",
]
