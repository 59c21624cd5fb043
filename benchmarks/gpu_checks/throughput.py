"""``throughput``: training images/s and peak memory through the engine, eager and compiled, bf16 and fp16, with the
training configuration (``configure_backends``: TF32, ``cudnn.benchmark``); ``simpool_vs_timm``: our SimPool
against timm's ``SimPool2d``."""

from __future__ import annotations

import torch

from simpool import SimPool, create_model
from simpool.train.engine import Engine, configure_backends, single_process
from simpool.train.recipe import CrossEntropyRecipe, Loop

from .common import epoch_minutes, peak_mib, reset_peak, timed

# (label, timm model, pool, SimPool gamma): the paper's gammas, 2.0 for CNNs and 1.25 for ViTs
ARMS = [
    ("ResNet-50 GAP", "resnet50", "default", None),
    ("ResNet-50 SimPool", "resnet50", "simpool", 2.0),
    ("ViT-S/16 CLS", "vit_small_patch16_224", "default", None),
    ("ViT-S/16 GAP", "vit_small_patch16_224", "gap", None),
    ("ViT-S/16 SimPool", "vit_small_patch16_224", "simpool", 1.25),
]
SMOKE_MODELS = {"resnet50": "resnet10t", "vit_small_patch16_224": "vit_tiny_patch16_224"}
SMOKE_VIT = dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2)
# (mode, amp): eager in both precisions, compiled in bf16 (each compilation costs 30-60 s of the 8 minutes; compiled
# fp16 would add one per model for what eager fp16 already shows); ViT-S/16 GAP, which no overhead needs, eager only
GRID = [("eager", "bf16"), ("eager", "fp16"), ("compiled", "bf16")]
EAGER_ONLY = {"ViT-S/16 GAP"}


def build_model(name: str, pool: str, gamma: float | None, smoke: bool, device: torch.device):
    kwargs = SMOKE_VIT if smoke and "vit" in name else {}
    name = SMOKE_MODELS[name] if smoke else name
    pool_kwargs = {"gamma": gamma} if pool == "simpool" else None
    model = create_model(name, pool=pool, pool_kwargs=pool_kwargs, num_classes=1000, **kwargs).to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" and "vit" not in name else model


def train_rate(arm: tuple, mode: str, amp: str, smoke: bool, device: torch.device) -> dict:
    """Images/s and peak memory of updates through the engine (AdamW, in-memory batch)."""
    _, name, pool, gamma = arm
    batch, size, steps = (2, 32, 1) if smoke else (128, 224, 15)
    torch.manual_seed(0)
    model = build_model(name, pool, gamma, smoke, device)
    images = torch.randn(batch, 3, size, size, device=device)  # (B, 3, S, S)
    targets = torch.randint(0, 1000, (batch,), device=device)  # (B,)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    compiled = mode == "compiled"
    loop = Loop(amp=amp, compile=compiled and not smoke, progress=False)
    engine = Engine(CrossEntropyRecipe(model, optimizer, []), loop, single_process(device))
    engine.build()
    engine.wrap()
    if compiled and smoke:  # dynamo with the eager backend: the compiled path, without inductor's C++ builds
        engine.model = torch.compile(engine.module, backend="eager")
    reset_peak(device)
    warmup = 1 if smoke else 2  # compilation and cuDNN's autotuning
    seconds = timed(lambda: engine.run_update(iter([(images, targets, 1.0)])), steps, device, warmup=warmup)
    return {"images_per_s": batch / seconds, "peak_mib": peak_mib(device), "batch": batch, "img_size": size}


def check_throughput(smoke: bool, device: torch.device) -> dict:
    configure_backends(device)
    rows = []
    for arm in ARMS:
        for mode, amp in GRID:
            if mode == "compiled" and arm[0] in EAGER_ONLY:
                continue
            rows.append({"arm": arm[0], "mode": mode, "amp": amp, **train_rate(arm, mode, amp, smoke, device)})
            torch._dynamo.reset()
    rate = {(r["arm"], r["mode"], r["amp"]): r["images_per_s"] for r in rows}
    overhead = {
        family: 100.0
        * (rate[(f"{family} {base}", "compiled", "bf16")] / rate[(f"{family} SimPool", "compiled", "bf16")] - 1)
        for family, base in (("ResNet-50", "GAP"), ("ViT-S/16", "CLS"))
    }
    best = {arm[0]: max(r["images_per_s"] for r in rows if r["arm"] == arm[0]) for arm in ARMS}
    summary = "; ".join(
        f"{family} SimPool overhead {value:+.1f}% (compiled bf16)" for family, value in overhead.items()
    )
    meaning = "; ".join(
        f"{arm}: {rate_:.0f} img/s/GPU = {epoch_minutes(rate_):.1f} min/epoch" for arm, rate_ in best.items()
    )
    return {"rows": rows, "simpool_overhead_pct": overhead, "summary": summary, "for_8_gpus": meaning}


def check_simpool_vs_timm(smoke: bool, device: torch.device) -> dict:
    from timm.layers import SimPool2d

    shape = (2, 16, 4, 4) if smoke else (64, 2048, 7, 7)  # (B, C, H, W): ResNet-50 features at 224
    steps = 1 if smoke else 50
    x = torch.randn(*shape, device=device, requires_grad=True)
    pools = {"ours": SimPool(shape[1], gamma=2.0), "timm": SimPool2d(shape[1], gamma=2.0)}
    seconds = {}
    for name, pool in pools.items():
        pool = pool.to(device)
        seconds[name] = timed(lambda pool=pool: pool(x).sum().backward(), steps, device)
    ms = {k: 1e3 * v for k, v in seconds.items()}
    return {
        "shape": list(shape),
        "ms": ms,
        "speedup": seconds["timm"] / seconds["ours"],
        "summary": f"pool forward+backward: ours {ms['ours']:.2f} ms, timm {ms['timm']:.2f} ms",
        "for_8_gpus": "the pool's own cost per ResNet-50 batch of 64; the throughput check has the whole step",
    }
