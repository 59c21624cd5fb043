"""The paper's supervised comparison (``simpool demo``), CLS token vs SimPool, on the SimPool bench.

The same small ViT is trained twice with the same data, budget and seed: once with its CLS token (the
paper's baseline) and once with SimPool (gamma 1.25, no CLS token; final norm -> SimPool -> LayerNorm
-> classifier, as the official code wires it). Both are then evaluated on the bench's test split:

- top-1 on ``original``, ``mixed_same`` and ``mixed_rand``; BG-gap = mixed_same - mixed_rand (IN-9);
- MaxBoxAccV2 (Choe et al., CVPR 2020) of each model's attention against the exact boxes: the mean CLS
  attention over the heads of the last block for the baseline, SimPool's ``a`` for SimPool;
- CorLoc of DINO-seg boxes (the biggest component of the patches holding 60% of the attention mass);
- the attention mass inside the object's mask (a uniform map scores the mean mask area).

While they train, both models are scored at ``curve_points`` regular updates (and at initialisation) on a
fixed subset of the same split (its first ``curve_images`` images): top-1 on ``original`` and ``mixed_rand``,
MaxBoxAccV2 and the mask mass, by the same :func:`evaluate_model` as the final evaluation, from the engine's
``after_update`` hook.

It writes ``report.md``, ``report.json`` (with the ``curves``), ``figure.png`` (Figure 1 of the paper: input |
CLS attention | SimPool attention, ground-truth box drawn), ``curves.png`` and the trained weights
(``cls.safetensors``, ``simpool.safetensors``: ``load_checkpoint(bench_vit(kind, config), path)``) to the output
folder; the command prints a short table and what the curves show.
Attention maps are compared only if both models learned the object: ``mixed_rand`` accuracy of at
least ``GATE`` (a model that reads the background alone scores chance there).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data.bench import BenchConfig, SimPoolBench, normalize_images
from ..models import attention_maps, create_model, save_checkpoint
from ..train.engine import Engine
from ..utils import warmup_cosine
from .bench_report import save_curves, save_figure, write_report

GATE = 0.6  # mixed_rand accuracy both models need before their attention maps are compared
MODELS = {"cls": ("default", "cls"), "simpool": ("simpool", "pool")}  # name: (pool, attention source)
EVAL_VARIANTS = ("original", "mixed_same", "mixed_rand")
CURVE_VARIANTS = ("original", "mixed_rand")
CURVE_KEYS = {  # curve point key: evaluate_model key
    "top1_original": "acc_original",
    "top1_mixed_rand": "acc_mixed_rand",
    "MaxBoxAccV2": "MaxBoxAccV2",
    "mask_mass": "mask_mass",
}


@dataclass(frozen=True)
class DemoConfig:
    """The demo's model, budget and data; every field goes into the report.

    Attributes:
        image_size: bench image side; patch_size: ViT patch side (``(image_size / patch_size)^2`` tokens).
        embed_dim, depth, num_heads: the ViT's width, blocks and heads.
        gamma: SimPool's exponent (paper: 1.25 for ViTs).
        train_images: training images drawn from the bench's train split.
        epochs: passes over them; batch_size, lr, weight_decay, warmup: AdamW with a cosine schedule.
        eval_images: test images per variant; figure_images: rows of the figure.
        curve_points: evaluations at regular updates during training, besides one at initialisation (0: none);
            curve_images: the first images of the evaluation split, per variant, that they score.
        bg_correlation, min_scale, max_scale: the bench (see ``BenchConfig``).
        seed: bench, initialisation and batch order.
        eval_split: where accuracy and attention are measured: ``test`` for reports, ``val`` while
            choosing a regime (never tune on test).
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
    weight_decay: float = 0.05
    warmup: float = 0.05
    eval_images: int = 2000
    figure_images: int = 6
    curve_points: int = 12
    curve_images: int = 400
    bg_correlation: float = 0.3
    min_scale: float = 0.45
    max_scale: float = 0.8
    seed: int = 0
    eval_split: str = "test"

    def bench(self) -> BenchConfig:
        return BenchConfig(self.image_size, self.bg_correlation, self.min_scale, self.max_scale, seed=self.seed)


PRESETS: dict[str, dict] = {
    "cpu": {},  # the default: at most 10 minutes on a 2-core CPU
    "quick": dict(train_images=2000, epochs=1.0, eval_images=200, figure_images=4, curve_images=100),  # < 2 minutes
    # issue 18's "both models learn the object" regime on a CPU: 10x the default's updates (6,250, about 30 minutes
    # per model on 2 idle cores at the default's speed), more distinct images; a candidate not yet validated on
    # the val split (docs/RESULTS.md, "Demo curves and the converge preset")
    "converge": dict(train_images=50000, epochs=16.0, curve_points=20, curve_images=1000),
    "gpu": dict(image_size=112, train_images=50000, epochs=30.0, embed_dim=192, num_heads=3, depth=6, eval_images=5000),
}


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


def curve_steps(steps: int, points: int) -> list[int]:
    """The updates after which the curves are measured: 0 (the initialisation) and ``points`` evenly spaced
    updates ending at ``steps`` (fewer when ``steps < points``); none when ``points`` is 0."""
    if points <= 0:
        return []
    return sorted({round(k * steps / points) for k in range(points + 1)})


def curve_point(kind: str, model, config: DemoConfig, device, step: int, datasets: dict | None = None) -> dict:
    """One point of a curve: :func:`evaluate_model` on the first ``config.curve_images`` images of
    ``CURVE_VARIANTS`` (``datasets``: those images rendered once, by variant), after ``step`` updates
    (``epoch``: passes over the training images so far)."""
    scored = evaluate_model(kind, model, config, device, False, CURVE_VARIANTS, config.curve_images, datasets)
    point = {"step": step, "epoch": step * config.batch_size / config.train_images}
    return {**point, **{key: scored[name] for key, name in CURVE_KEYS.items()}}


def train_model(kind: str, config: DemoConfig, device: torch.device, progress: bool = True) -> dict:
    """Train one model on the bench's ``original`` train split; returns ``{"model", "seconds", "steps", "loss",
    "curves", "curve_seconds"}`` (``seconds``: training alone, ``curve_seconds``: the curve evaluations).

    One engine epoch of ``steps`` updates over a seeded order of the images (``config.epochs`` passes),
    AdamW with a linear warm-up and a cosine decay, label-smoothed cross-entropy, random horizontal flips.
    The curve points (:func:`curve_steps`) are measured from the engine's ``after_update`` hook; they use no
    random number, so the trained model is the same with or without them. Images drawn more than once (more
    than one epoch; the curve subset) are rendered once and kept in memory: the same uint8 images, so the same
    model, without rendering each again.
    """
    torch.manual_seed(config.seed)
    model = bench_vit(kind, config).to(device)
    data = SimPoolBench("train", "original", config.bench(), num_images=config.train_images)
    if config.epochs > 1:  # 614 MB for 50,000 images of 64 px
        data = data.rendered(progress)
    curve_data = {
        variant: SimPoolBench(config.eval_split, variant, config.bench(), num_images=config.curve_images).rendered()
        for variant in (CURVE_VARIANTS if config.curve_points > 0 else ())
    }
    steps = max(1, int(config.epochs * len(data) / config.batch_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = warmup_cosine(optimizer, steps, max(1, int(config.warmup * steps)))
    generator = torch.Generator().manual_seed(config.seed)
    order = torch.cat([torch.randperm(len(data), generator=generator) for _ in range(math.ceil(config.epochs) + 1)])
    losses: list[torch.Tensor] = []  # on the device: read once at the end
    curves: list[dict] = []
    measure_at, curve_seconds = set(curve_steps(steps, config.curve_points)), [0.0]

    def batches(epoch: int, start_update: int):
        for step in range(start_update, steps):
            images, labels, _, _ = data.batch(order[step * config.batch_size : (step + 1) * config.batch_size].numpy())
            flip = torch.rand(len(images), 1, 1, 1, generator=generator) < 0.5
            images = torch.where(flip, images.flip(-1), images)  # horizontal flip
            yield normalize_images(images), labels, 0

    def step(model, images, labels, weight):
        loss = F.cross_entropy(model(images.to(device)), labels.to(device), label_smoothing=0.1)
        losses.append(loss.detach())
        return loss, len(labels)

    def measure(update: int) -> None:  # the engine's after_update hook
        if update not in measure_at:
            return
        start = time.perf_counter()
        curves.append(curve_point(kind, model, config, device, update, curve_data))
        model.train()
        if progress:  # a long run shows its curves as they grow
            point = curves[-1]
            tqdm.write(
                f"{kind} update {update} (epoch {point['epoch']:.2f}): top-1 original {point['top1_original']:.3f},"
                f" mixed_rand {point['top1_mixed_rand']:.3f}; MaxBoxAccV2 {point['MaxBoxAccV2']:.1f},"
                f" mask mass {point['mask_mass']:.3f}"
            )
        curve_seconds[0] += time.perf_counter() - start

    engine = Engine(
        model,
        optimizer,
        step,
        scheduler=schedule,
        after_update=measure,
        desc=f"train {kind}",
        progress=progress,
        log_every=10,
    )
    start = time.perf_counter()
    measure(0)
    engine.fit(batches, epochs=1, updates_per_epoch=steps)
    return {
        "model": model,
        "seconds": time.perf_counter() - start - curve_seconds[0],
        "steps": steps,
        "loss": float(torch.stack(losses[-20:]).double().mean()),
        "curves": curves,
        "curve_seconds": curve_seconds[0],
    }


def mask_mass(maps: np.ndarray, masks: np.ndarray) -> float:
    """Mean fraction of attention mass inside the object mask, ``sum_p m_p A_p / sum_p A_p``; maps ``(N, H, W)``."""
    maps = np.clip(maps, 0, None)
    return float(((maps * masks).sum((1, 2)) / np.maximum(maps.sum((1, 2)), 1e-12)).mean())


@torch.no_grad()
def predict(model, data: SimPoolBench, device, source: str | None = None, batch_size: int = 250) -> dict:
    """Predictions over a dataset, and attention maps ``(N, h, w)`` when ``source`` is given."""
    model.eval()
    out = {"pred": [], "labels": [], "boxes": [], "masks": [], "maps": []}
    for i in range(0, len(data), batch_size):
        images, labels, boxes, masks = data.batch(np.arange(i, min(i + batch_size, len(data))))
        x = normalize_images(images).to(device)
        out["pred"].append(model(x).argmax(1).cpu())
        out["labels"].append(labels)
        out["boxes"].append(boxes)
        out["masks"].append(masks)
        if source is not None:
            out["maps"].append(attention_maps(model, x, source=source).cpu())
    return {k: torch.cat(v).numpy() for k, v in out.items() if v}


def localization_metrics(maps: np.ndarray, boxes: np.ndarray, masks: np.ndarray, patch_size: int) -> dict:
    """MaxBoxAccV2, CorLoc (percent) and mask mass (a fraction) of attention maps ``(N, h, w)`` on ``(N, S, S)``."""
    from ..evaluate.discovery import corloc, dino_seg
    from ..evaluate.localization import max_box_acc_v2

    N, h, w = maps.shape
    S = masks.shape[-1]
    upsampled = F.interpolate(torch.from_numpy(maps).float()[:, None], size=(S, S), mode="bilinear")[:, 0]  # (N, S, S)
    upsampled = upsampled.numpy()
    # the reference's own route from a low-resolution map: bicubic resize to 224, min-max, thresholds
    box_acc = max_box_acc_v2(maps, [[b.tolist()] for b in boxes], [(S, S)] * N)
    seg_boxes = [dino_seg(torch.from_numpy(m), (h, w), patch_size, (S, S)) for m in maps]  # (h, w) each
    return {
        "MaxBoxAccV2": float(box_acc["MaxBoxAccV2"]),
        "BoxAcc@50": float(box_acc["BoxAcc@50"]),
        "CorLoc": float(corloc(seg_boxes, [[b.tolist()] for b in boxes])),
        "mask_mass": mask_mass(upsampled, masks),
    }


def evaluate_model(
    kind: str,
    model,
    config: DemoConfig,
    device,
    progress: bool = True,
    variants: tuple[str, ...] = EVAL_VARIANTS,
    num_images: int | None = None,
    datasets: dict | None = None,
) -> dict:
    """Accuracy on ``variants``, BG-gap (when they hold both mixed ones), and the localization metrics of the
    attention on ``original``, over the first ``num_images`` (default ``config.eval_images``) images of
    ``config.eval_split`` (``datasets``: those images already rendered, by variant). The final evaluation and
    every curve point (:func:`curve_point`) call it."""
    if "original" not in variants:
        raise ValueError(f"variants must include 'original' (the attention is scored there), got {variants}")
    source = MODELS[kind][1]
    result, outputs = {}, None
    for variant in tqdm(variants, desc=f"eval {kind}", disable=not progress):
        if datasets and variant in datasets:
            data = datasets[variant]
        else:
            data = SimPoolBench(config.eval_split, variant, config.bench(), num_images=num_images or config.eval_images)
        out = predict(model, data, device, source if variant == "original" else None)
        result[f"acc_{variant}"] = float((out["pred"] == out["labels"]).mean())
        outputs = out if variant == "original" else outputs
    if {"mixed_same", "mixed_rand"} <= set(variants):
        result["bg_gap"] = result["acc_mixed_same"] - result["acc_mixed_rand"]
    result.update(localization_metrics(outputs["maps"], outputs["boxes"], outputs["masks"], config.patch_size))
    if "mixed_rand" in variants:
        result["learned_object"] = result["acc_mixed_rand"] >= GATE
    result["uniform_mask_mass"] = float(outputs["masks"].mean())  # what a uniform map scores: the mean mask area
    return result


def run_demo(config: DemoConfig, out: str | Path, device: torch.device | None = None, progress: bool = True) -> dict:
    """Train both models, evaluate them, write ``report.md``, ``report.json``, ``figure.png`` and ``curves.png``;
    returns the report."""
    device = device or torch.device("cpu")
    start = time.perf_counter()
    results, models, curves = {}, {}, {}
    for kind in MODELS:
        trained = train_model(kind, config, device, progress)
        models[kind], curves[kind] = trained.pop("model"), trained.pop("curves")
        results[kind] = {**trained, **evaluate_model(kind, models[kind], config, device, progress)}
    checkpoints = {  # the trained weights, for questions the report does not answer: bench_vit + load_checkpoint
        kind: str(save_checkpoint(model, Path(out) / f"{kind}.safetensors", {"kind": kind, "seed": str(config.seed)}))
        for kind, model in models.items()
    }
    sources = {kind: MODELS[kind][1] for kind in models}
    figure = save_figure(models, sources, config, Path(out) / "figure.png", device)
    subset = SimPoolBench(config.eval_split, "original", config.bench(), num_images=config.curve_images)
    masks = subset.batch(np.arange(len(subset)))[3]  # (n, S, S)
    curve_subset = {
        "split": config.eval_split,
        "images": len(subset),
        "variants": list(CURVE_VARIANTS),
        "uniform_mask_mass": float(masks.double().mean()),  # a uniform map's mask mass on the subset
    }
    training, curve_seconds = (sum(r[key] for r in results.values()) for key in ("seconds", "curve_seconds"))
    report = {
        "config": dataclasses.asdict(config),
        "results": results,
        "uniform_mask_mass": next(iter(results.values()))["uniform_mask_mass"],  # same images for every model
        "gate": GATE,
        "curves": curves,
        "curve_subset": curve_subset,
        "curve_fraction": curve_seconds / max(training, 1e-9),  # curve evaluation time / training time
        "wall_seconds": time.perf_counter() - start,
        "figure": str(figure),
        "checkpoints": checkpoints,
        "curves_figure": str(save_curves(curves, curve_subset["uniform_mask_mass"], GATE, Path(out) / "curves.png")),
    }
    return write_report(report, Path(out))


def demo_config(preset: str = "cpu", seed: int = 0, overrides: dict | None = None) -> DemoConfig:
    """The ``preset`` (a key of ``PRESETS``), then ``seed``, then ``overrides`` of ``DemoConfig`` fields, each
    value converted to its field's type.

    Raises:
        ValueError: an unknown preset or field.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown demo preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    fields = [f.name for f in dataclasses.fields(DemoConfig)]
    values = {**PRESETS[preset], "seed": seed}
    for key, value in (overrides or {}).items():
        if key not in fields:
            raise ValueError(f"unknown demo setting {key!r}; valid settings: {', '.join(fields)}")
        values[key] = type(getattr(DemoConfig(), key))(value)
    return DemoConfig(**values)
