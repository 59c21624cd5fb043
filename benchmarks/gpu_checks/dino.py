"""``dino_step``: multi-crop DINO updates of ViT-S/16 with SimPool and the 65,536-wide head, through the engine:
time, peak memory, and the dtypes that keep the loss exact (the head's last layer and the loss in float32)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from simpool.train.dino.config import DinoConfig
from simpool.train.dino.recipe import DinoRecipe
from simpool.train.engine import Engine, configure_backends, single_process
from simpool.train.validation import autocast

from .common import epoch_minutes, image_folder, peak_mib, reset_peak, timed


def dino_config(smoke: bool, root: Path, amp: str) -> DinoConfig:
    """The ViT-S/16 SimPool recipe (100 images per GPU: 800 on 8), or a toy of it under ``smoke``."""
    config = DinoConfig()
    config.data.root, config.data.num_workers = str(root), 0
    config.model.pool, config.model.pool_kwargs = "simpool", {"gamma": 1.25}
    config.head.norm_last_layer = False
    config.train.amp, config.train.progress, config.train.batch_size = amp, False, 100
    if smoke:
        config.model.name = "vit_tiny_patch16_224"
        config.model.kwargs = dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2)
        config.data.global_size, config.data.local_size = 32, 16
        config.head.out_dim, config.head.hidden_dim, config.head.bottleneck_dim = 256, 64, 32
        config.train.batch_size = 2
    return config


def check_dino_step(smoke: bool, device: torch.device) -> dict:
    amp = "bf16"
    with tempfile.TemporaryDirectory() as folder:
        images = image_folder(
            Path(folder) / "train", 2, 1 if smoke else 50, (64, 64)
        )  # a batch of 100 for the schedules
        config = dino_config(smoke, images.parent, amp)
        recipe = DinoRecipe(config)
        engine = Engine(recipe, recipe.loop, single_process(device))
        engine.build()
    configure_backends(device)
    batch, data = config.train.batch_size, config.data
    sizes = [data.global_size] * 2 + [data.local_size] * data.local_crops_number
    crops = [torch.randn(batch, 3, s, s, device=device) for s in sizes]  # V x (B, 3, S_v, S_v)
    targets = torch.zeros(batch, dtype=torch.long, device=device)  # (B,)
    reset_peak(device)
    seconds = timed(lambda: engine.run_update(iter([(crops, targets, 1.0)])), 1 if smoke else 10, device, warmup=2)
    with torch.no_grad(), autocast(device, amp):
        logits = recipe.student(crops[:1])  # (B, K) under the run's autocast
    loss_dtype = engine._loss.dtype
    if loss_dtype != torch.float32 or logits.dtype != torch.float32:
        raise AssertionError(f"DINO's head output is {logits.dtype} and its loss {loss_dtype}: both must be float32")
    rate = batch / seconds
    return {
        "batch_per_gpu": batch,
        "crops": sizes,
        "out_dim": config.head.out_dim,
        "amp": amp,
        "seconds_per_update": seconds,
        "images_per_s": rate,
        "peak_mib": peak_mib(device),
        "loss_dtype": str(loss_dtype),
        "head_dtype": str(logits.dtype),
        "summary": f"{seconds * 1e3:.0f} ms per update of {batch} images x {len(sizes)} crops, loss {loss_dtype}",
        "for_8_gpus": f"{rate:.0f} img/s/GPU: a DINO epoch in {epoch_minutes(rate):.1f} min on 8 GPUs",
    }
