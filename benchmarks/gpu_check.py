"""See simpool work on a GPU in at most 8 minutes: one command, one JSON, one table.

Checks, in order (each one's failure is recorded and the next one runs):

1. ``tests``: the tests marked ``cuda`` (every pool forward and backward on CUDA, fp16 and bf16 training steps
   through the engine, resume on CUDA, k-NN on CUDA), run by pytest in a subprocess.
2. ``throughput``: training images/s and peak memory of ResNet-50 and ViT-S/16 at 224 with SimPool against
   their baselines (GAP, the CLS token), bf16 AMP, through the engine's update; SimPool's overhead in percent.
3. ``simpool_vs_timm``: our SimPool against timm's ``SimPool2d`` (forward + backward) on ResNet-50 features.
4. ``demo``: the demo's ``gpu`` preset cut to fit (CLS vs SimPool on the SimPool bench; needs Fashion-MNIST).

Usage:
    python benchmarks/gpu_check.py                    # the full check on the GPU
    python benchmarks/gpu_check.py --smoke            # every check at toy size on whatever device is there
    python benchmarks/gpu_check.py --only throughput --out outputs/gpu_check.json
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simpool import SimPool, create_model  # noqa: E402
from simpool.train.engine import Engine, single_process  # noqa: E402
from simpool.train.recipe import CrossEntropyRecipe, Loop  # noqa: E402
from simpool.utils import default_device, write_json  # noqa: E402

# model, its baseline pool, the SimPool gamma (paper: 2.0 for CNNs, 1.25 for ViTs)
MODELS = {"resnet50": ("default", 2.0), "vit_small_patch16_224": ("default", 1.25)}
SMOKE_MODELS = {"resnet10t": ("default", 2.0), "vit_tiny_patch16_224": ("default", 1.25)}
SMOKE_VIT = dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], None], steps: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` over ``steps`` calls, after one warm-up call."""
    fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / steps


def check_tests(smoke: bool, device: torch.device) -> dict:
    """``pytest -m cuda`` in a subprocess: counts of passed / skipped / failed, and the summary line."""
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"]
    command += ["tests/test_cuda.py", "tests/train/test_state.py"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    summary = (result.stdout.strip().splitlines() or [""])[-1]
    if result.returncode not in (0, 5):
        raise RuntimeError(f"cuda tests failed: {summary}\n{result.stdout[-2000:]}")
    return {"summary": summary, "cuda": torch.cuda.is_available()}


def train_rate(name: str, pool: str, gamma: float | None, batch: int, image_size: int, steps: int, device, **kwargs):
    """Images/s and peak memory (MiB, CUDA only) of training ``name`` with ``pool`` through the engine, bf16."""
    pool_kwargs = {"gamma": gamma} if pool == "simpool" else None
    model = create_model(name, pool=pool, pool_kwargs=pool_kwargs, num_classes=1000, **kwargs).to(device)
    model = model.to(memory_format=torch.channels_last) if device.type == "cuda" and "vit" not in name else model
    images = torch.randn(batch, 3, image_size, image_size, device=device)  # (B, 3, S, S)
    targets = torch.randint(0, 1000, (batch,), device=device)  # (B,)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loop = Loop(amp="bf16" if device.type == "cuda" else "none", progress=False)
    engine = Engine(CrossEntropyRecipe(model, optimizer, []), loop, single_process(device))
    engine.build()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = _timed(lambda: engine.run_update(iter([(images, targets, 1.0)])), steps, device)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"images_per_s": batch / seconds, "peak_mib": peak}


def check_throughput(smoke: bool, device: torch.device) -> dict:
    models = SMOKE_MODELS if smoke else MODELS
    batch, img_size, steps = (2, 32, 1) if smoke else (128, 224, 20)
    rows = {}
    for name, (baseline, gamma) in models.items():
        kwargs = SMOKE_VIT if smoke and "vit" in name else {}
        base = train_rate(name, baseline, None, batch, img_size, steps, device, **kwargs)
        ours = train_rate(name, "simpool", gamma, batch, img_size, steps, device, **kwargs)
        overhead = 100.0 * (base["images_per_s"] / ours["images_per_s"] - 1.0)
        rows[name] = {"baseline": base, "simpool": ours, "simpool_overhead_pct": overhead}
    return {"batch": batch, "img_size": img_size, "amp": "bf16" if device.type == "cuda" else "none", **rows}


def check_simpool_vs_timm(smoke: bool, device: torch.device) -> dict:
    from timm.layers import SimPool2d

    shape = (2, 16, 4, 4) if smoke else (64, 2048, 7, 7)  # (B, C, H, W): ResNet-50 features at 224
    steps = 1 if smoke else 50
    x = torch.randn(*shape, device=device, requires_grad=True)
    pools = {"ours": SimPool(shape[1], gamma=2.0), "timm": SimPool2d(shape[1], gamma=2.0)}
    seconds = {}
    for name, pool in pools.items():
        pool = pool.to(device)
        seconds[name] = _timed(lambda pool=pool: pool(x).sum().backward(), steps, device)
    return {
        "shape": list(shape),
        "ms": {k: 1e3 * v for k, v in seconds.items()},
        "speedup": seconds["timm"] / seconds["ours"],
    }


def check_demo(smoke: bool, device: torch.device) -> dict:
    import dataclasses

    from simpool.data.fashion_mnist import fashion_mnist_dir
    from simpool.experiments.demo import PRESETS, DemoConfig, run_demo

    if not any(fashion_mnist_dir().glob("train-images-idx3-ubyte*")):
        return {"skipped": f"no Fashion-MNIST at {fashion_mnist_dir()} (set SIMPOOL_FASHION_MNIST)"}
    if smoke:
        preset = dict(PRESETS["quick"], train_images=64, eval_images=32, figure_images=2, embed_dim=48, depth=1)
    else:  # the gpu preset cut to about 3 minutes on one GPU
        preset = dict(PRESETS["gpu"], train_images=20000, epochs=10.0, eval_images=2000)
    config = DemoConfig(**preset)
    report = run_demo(
        config, ROOT / "outputs" / ("gpu_check_demo_smoke" if smoke else "gpu_check_demo"), device, progress=False
    )
    keys = ("acc_original", "acc_mixed_rand", "bg_gap", "MaxBoxAccV2", "CorLoc", "mask_mass", "seconds")
    results = {kind: {k: r[k] for k in keys if k in r} for kind, r in report["results"].items()}
    return {"config": dataclasses.asdict(config), "results": results, "wall_seconds": report["wall_seconds"]}


CHECKS: dict[str, Callable[[bool, torch.device], dict]] = {
    "tests": check_tests,
    "throughput": check_throughput,
    "simpool_vs_timm": check_simpool_vs_timm,
    "demo": check_demo,
}


def table(results: dict) -> str:
    """One line per check: status, seconds and its headline numbers."""
    lines = [f"{'check':<16} {'status':<7} {'seconds':>8}  headline"]
    for name, entry in results["checks"].items():
        data = entry.get("result", {})
        if name == "throughput" and "error" not in entry:
            headline = "; ".join(
                f"{m}: {r['baseline']['images_per_s']:.0f} -> {r['simpool']['images_per_s']:.0f} img/s "
                f"({r['simpool_overhead_pct']:+.1f}%)"
                for m, r in data.items()
                if isinstance(r, dict) and "baseline" in r
            )
        elif name == "simpool_vs_timm" and "error" not in entry:
            headline = f"ours {data['ms']['ours']:.2f} ms, timm {data['ms']['timm']:.2f} ms ({data['speedup']:.1f}x)"
        elif name == "demo" and "results" in data:
            headline = "; ".join(f"{k}: MaxBoxAccV2 {r['MaxBoxAccV2']:.1f}" for k, r in data["results"].items())
        else:
            headline = entry.get("error", "").splitlines()[0] if "error" in entry else str(data)[:90]
        lines.append(f"{name:<16} {entry['status']:<7} {entry['seconds']:>8.1f}  {headline}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="every check at toy size (the CPU here: under 2 min)")
    parser.add_argument("--only", nargs="+", choices=list(CHECKS), default=list(CHECKS), help="checks to run")
    parser.add_argument("--out", default="gpu_check.json", help="JSON file for every figure")
    args = parser.parse_args(argv)
    device = default_device()
    results = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "smoke": args.smoke,
        "date": time.strftime("%Y-%m-%d"),
        "checks": {},
    }
    failed = 0
    for name in args.only:
        start = time.perf_counter()
        try:
            entry = {"status": "ok", "result": CHECKS[name](args.smoke, device)}
        except Exception as error:  # a failed check is a result; the others still run
            failed += 1
            entry = {
                "status": "failed",
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc(),
            }
        entry["seconds"] = time.perf_counter() - start
        results["checks"][name] = entry
        write_json(args.out, results)  # after every check: an interrupted run keeps what it measured
    print(table(results))
    print(f"written: {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
