"""The demo's settings: :class:`DemoConfig`, its presets (sizes of the job) and the ViT both arms train."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ...data.bench import BenchConfig
from ...models import create_model
from ...train.config import from_dict

MODELS = {"cls": ("default", "cls"), "simpool": ("simpool", "pool")}  # name: (pool, attention source)


@dataclass(frozen=True)
class DemoConfig:
    """The demo's model, budget and data; every field goes into the report.

    Attributes:
        image_size: bench image side; patch_size: ViT patch side (``(image_size / patch_size)^2`` tokens).
        embed_dim, depth, num_heads: the ViT's width, blocks and heads.
        gamma: SimPool's exponent (paper: 1.25 for ViTs).
        train_images: training images drawn from the bench's train split.
        epochs: passes over them; batch_size, lr, weight_decay, warmup: AdamW with a cosine schedule.
        cls_lr, simpool_lr: one arm's own learning rate (unset: ``lr``), as ``simpool demo --choose-lr`` chooses
            it on the validation split (:mod:`.lr_choice`).
        eval_images: images of ``eval_split`` per variant (the final evaluation, the baselines and the matched
            checkpoints score the same ones); figure_images: rows of the figure.
        curve_points: evaluations (and checkpoints) at regular updates during training, besides one at
            initialisation (0: none); curve_images: the first images of the validation split, per variant, that
            they score.
        bg_correlation, min_scale, max_scale, overhang: the bench (see ``BenchConfig``; the scales and overhang
            were chosen on the val split so that maps ignoring the image find no object: docs/bench.md).
        seed: bench, initialisation and batch order.
        eval_split: where the final accuracy and attention (and the matched checkpoints') are measured: ``test``
            for reports, ``val`` while choosing a regime (never tune on test). The curves are always measured on
            ``val``.
    """

    image_size: int = 64
    patch_size: int = 8
    embed_dim: int = 96
    depth: int = 4
    num_heads: int = 3
    gamma: float = 1.25
    train_images: int = 40000
    epochs: float = 2.0
    batch_size: int = 128
    lr: float = 1e-3
    cls_lr: float | None = None
    simpool_lr: float | None = None
    weight_decay: float = 0.05
    warmup: float = 0.05
    eval_images: int = 2000
    figure_images: int = 6
    curve_points: int = 12
    curve_images: int = 400
    bg_correlation: float = 0.3
    min_scale: float = 0.4
    max_scale: float = 0.65
    overhang: float = 0.25
    seed: int = 0
    eval_split: str = "test"

    BOUNDS: ClassVar[dict[str, str]] = {  # checked by simpool.train.config.from_dict, as every config's
        **dict.fromkeys(("image_size", "patch_size", "embed_dim", "depth", "num_heads", "batch_size"), "[1, inf)"),
        **dict.fromkeys(("train_images", "eval_images", "curve_images"), "[1, inf)"),
        **dict.fromkeys(("figure_images", "curve_points"), "[0, inf)"),
        **dict.fromkeys(("epochs", "lr", "cls_lr", "simpool_lr"), "(0, inf)"),
    }

    def arm_lr(self, kind: str) -> float:
        """The learning rate the arm ``kind`` (``cls`` or ``simpool``) trains at: its own, else ``lr``."""
        if kind not in MODELS:
            raise ValueError(f"unknown model kind {kind!r}; valid kinds: {', '.join(MODELS)}")
        own = getattr(self, f"{kind}_lr")
        return self.lr if own is None else own

    def bench(self) -> BenchConfig:
        return BenchConfig(
            self.image_size, self.bg_correlation, self.min_scale, self.max_scale, seed=self.seed, overhang=self.overhang
        )


PRESETS: dict[str, dict] = {  # each a base that the key=value overrides then change
    "cpu": {},  # the default: at most 10 minutes on a 2-core CPU
    # a smoke test of the whole job in under 2 minutes: 15 updates, 6 curve points (checkpoints) on 100 val images
    "quick": dict(train_images=2000, epochs=1.0, eval_images=200, figure_images=4, curve_points=6, curve_images=100),
    # "both models learn the object" on a CPU: 10x the default's updates (6,250, about 30 minutes per model on
    # 2 idle cores at the default's speed) on more distinct images (docs/RESULTS.md, "Does SimPool localize
    # better than the CLS token?")
    "converge": dict(train_images=50000, epochs=16.0, curve_points=20, curve_images=1000),
    "gpu": dict(image_size=112, train_images=50000, epochs=30.0, embed_dim=192, num_heads=3, depth=6, eval_images=5000),
}


def preset(name: str) -> dict:
    """The ``DemoConfig`` fields a preset sets (a copy).

    Raises:
        ValueError: an unknown preset, naming the valid ones.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown demo preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return dict(PRESETS[name])


def demo_config(name: str = "cpu", **fields) -> DemoConfig:
    """The preset ``name``, then ``fields`` (``DemoConfig`` fields), checked as the command's ``key=value``
    overrides are (an unknown field or a value of the wrong type is a one-line ``ValueError``)."""
    return from_dict(DemoConfig, {**preset(name), **fields})


def bench_vit(kind: str, config: DemoConfig) -> torch.nn.Module:
    """The demo's ViT with its CLS token (``kind="cls"``) or with SimPool (``kind="simpool"``)."""
    if kind not in MODELS:
        raise ValueError(f"unknown model kind {kind!r}; valid kinds: {', '.join(MODELS)}")
    pool = MODELS[kind][0]
    return create_model(
        "vit_tiny_patch16_224",
        pool=pool,
        pool_kwargs={"gamma": config.gamma} if pool == "simpool" else None,
        num_classes=10,
        img_size=config.image_size,
        patch_size=config.patch_size,
        embed_dim=config.embed_dim,
        depth=config.depth,
        num_heads=config.num_heads,
    )
