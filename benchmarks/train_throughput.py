"""Training throughput: an update of our engine (``simpool.train.engine.Engine.run_update``: autocast, scaled
backward, optimizer step, per-update timm schedule) against a bare timm step (``cross_entropy(model(x),
y).backward(); opt.step(); opt.zero_grad()``), same model, batch and AMP, timed in alternating rounds of the
same run on in-memory batches.

``python benchmarks/train_throughput.py --model vit_small_patch16_224 --pool simpool --batch 64 --amp bf16``
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch
import torch.nn.functional as F
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2

from simpool.models import create_model
from simpool.train.engine import Engine, single_process
from simpool.train.recipe import CrossEntropyRecipe, Loop
from simpool.train.schedule import Schedule
from simpool.train.validation import autocast
from simpool.utils import default_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    model_name: str,
    pool: str = "simpool",
    batch: int = 32,
    img_size: int = 224,
    amp: str = "none",
    steps: int = 10,
    rounds: int = 3,
    device: torch.device | None = None,
    **timm_kwargs,
) -> dict:
    """Images/s of our training step and of a bare timm step, and their ratio (ours / bare); best round of each."""
    device = device or default_device()
    try:  # ViT-like models take the image size; CNNs do not
        ours = create_model(model_name, pool=pool, num_classes=1000, img_size=img_size, **timm_kwargs)
    except TypeError:
        ours = create_model(model_name, pool=pool, num_classes=1000, **timm_kwargs)
    ours = ours.to(device)
    bare = copy.deepcopy(ours)
    images = torch.randn(batch, 3, img_size, img_size, device=device)  # (B, 3, S, S)
    targets = torch.randint(0, 1000, (batch,), device=device)  # (B,)
    opt_ours = create_optimizer_v2(ours, opt="adamw", lr=1e-4, weight_decay=0.05)
    opt_bare = create_optimizer_v2(bare, opt="adamw", lr=1e-4, weight_decay=0.05)
    sched, _ = create_scheduler_v2(
        opt_ours, num_epochs=1000, warmup_epochs=1, step_on_epochs=False, updates_per_epoch=1000
    )
    recipe = CrossEntropyRecipe(ours, opt_ours, [], schedule=Schedule(sched, on="update"))
    engine = Engine(recipe, Loop(amp=amp, progress=False), single_process(device))
    engine.build()
    scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None  # the bare step's own

    def our_step():
        engine.run_update(iter([(images, targets, 1.0)]))

    def bare_step():
        with autocast(device, amp):
            loss = F.cross_entropy(bare(images), targets)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        if scaler is not None:
            scaler.step(opt_bare)
            scaler.update()
        else:
            opt_bare.step()
        opt_bare.zero_grad(set_to_none=True)

    best = {"ours": 0.0, "bare": 0.0}
    pairs = [("ours", our_step), ("bare", bare_step)]
    for _, step in pairs:  # warm-up
        step()
    for round_index in range(rounds):
        for name, step in pairs if round_index % 2 == 0 else pairs[::-1]:  # alternate who goes first
            _sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                step()
            _sync(device)
            best[name] = max(best[name], steps * batch / (time.perf_counter() - start))
    return {
        **best,
        "ratio": best["ours"] / best["bare"],
        "model": model_name,
        "pool": pool,
        "batch": batch,
        "img_size": img_size,
        "amp": amp,
        "device": str(device),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vit_small_patch16_224")
    parser.add_argument("--pool", default="simpool")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model-kwargs", default="{}", help="JSON of extra timm kwargs, e.g. '{\"depth\": 4}'")
    args = parser.parse_args(argv)
    result = measure(
        args.model,
        args.pool,
        args.batch,
        args.img_size,
        args.amp,
        args.steps,
        args.rounds,
        **json.loads(args.model_kwargs),
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
