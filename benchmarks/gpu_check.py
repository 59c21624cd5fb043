"""See simpool work on a GPU in at most 8 minutes: one command, one JSON, one table.

Checks, in order (each one's failure is recorded and the next one runs; the modules are in ``gpu_checks/``):

1. ``tests``: the tests marked ``cuda`` (every pool on CUDA against the CPU with TF32 off, AMP steps through the
   engine, resume on CUDA, k-NN and the DINO loss on CUDA), run by pytest in a subprocess.
2. ``throughput``: training images/s and peak memory through the engine with the training configuration
   (``configure_backends``), eager (bf16 and fp16) and compiled (bf16; ViT-S/16 GAP eager only): ResNet-50
   GAP/SimPool, ViT-S/16 CLS/GAP/SimPool at 224, 128 images per GPU.
3. ``simpool_vs_timm``: our SimPool against timm's ``SimPool2d`` (forward + backward) on ResNet-50 features.
4. ``ddp``: two processes (gloo where there is one GPU) equal one process with the same global batch, through
   ``torch.compile``, ``no_sync`` and a resume.
5. ``dino_step``: multi-crop DINO updates of ViT-S/16 SimPool with the 65,536-wide head: time, memory, and the
   head's and loss's float32.
6. ``resume``: ResNet-50 SimPool stopped and resumed on the device, equal to the uninterrupted run.
7. ``loader``: the training loaders alone (ResNet-50 recipe, DINO), images/s per process.
8. ``knn``: k-NN of 50,000 queries over 1.28M x 384 features.
9. ``probe_cache``: filling the token cache with ViT-S/16 tokens and reading it through the probe's loader.
10. ``demo``: the demo's ``gpu`` preset cut to fit (CLS vs SimPool on the SimPool bench; needs Fashion-MNIST).

The table gives each check's figures and what they mean for an 8-GPU ImageNet run. ``--smoke`` runs every
check at toy size (on a CPU: dynamo's eager backend stands in for inductor) in under 3 minutes.

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
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpu_checks.data import check_loader, check_probe_cache  # noqa: E402
from gpu_checks.ddp import check_ddp  # noqa: E402
from gpu_checks.dino import check_dino_step  # noqa: E402
from gpu_checks.knn import check_knn  # noqa: E402
from gpu_checks.resume import check_resume  # noqa: E402
from gpu_checks.throughput import check_simpool_vs_timm, check_throughput  # noqa: E402

from simpool.utils import default_device, write_json  # noqa: E402


def check_tests(smoke: bool, device: torch.device) -> dict:
    """``pytest -m cuda`` in a subprocess: counts of passed / skipped / failed, and the summary line."""
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"]
    command += ["tests/test_cuda.py", "tests/train/test_state.py"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    summary = (result.stdout.strip().splitlines() or [""])[-1]
    if result.returncode not in (0, 5):
        raise RuntimeError(f"cuda tests failed: {summary}\n{result.stdout[-2000:]}")
    return {
        "cuda": torch.cuda.is_available(),
        "summary": summary,
        "for_8_gpus": "pools, AMP steps, resume, k-NN and the DINO loss behave on CUDA as on the CPU",
    }


def check_demo(smoke: bool, device: torch.device) -> dict:
    import dataclasses

    from simpool.data.fashion_mnist import fashion_mnist_dir
    from simpool.experiments.demo import PRESETS, DemoConfig, run_demo

    if not any(fashion_mnist_dir().glob("train-images-idx3-ubyte*")):  # `make` installs Debian's package there
        skipped = f"no Fashion-MNIST at {fashion_mnist_dir()} (run `make fashion-mnist` or set SIMPOOL_FASHION_MNIST)"
        return {"skipped": skipped, "summary": skipped, "for_8_gpus": "-"}
    if smoke:
        preset = dict(PRESETS["quick"], train_images=64, eval_images=32, figure_images=2, embed_dim=48, depth=1)
        # the curves' code path, at a fraction of the quick preset's cost
        preset.update(curve_points=2, curve_images=16)
    else:  # the gpu preset cut to about 1.5 minutes on one GPU (the whole check: at most 8)
        preset = dict(PRESETS["gpu"], train_images=10000, epochs=10.0, eval_images=2000)
    config = DemoConfig(**preset)
    report = run_demo(
        config, ROOT / "outputs" / ("gpu_check_demo_smoke" if smoke else "gpu_check_demo"), device, progress=False
    )
    keys = ("acc_original", "acc_mixed_rand", "bg_gap", "MaxBoxAccV2", "CorLoc", "mask_mass", "seconds")
    results = {kind: {k: r[k] for k in keys if k in r} for kind, r in report["results"].items()}
    summary = "; ".join(f"{k}: MaxBoxAccV2 {r.get('MaxBoxAccV2', float('nan')):.1f}" for k, r in results.items())
    return {
        "config": dataclasses.asdict(config),
        "results": results,
        "wall_seconds": report["wall_seconds"],
        "summary": f"{summary} ({report['wall_seconds']:.0f} s)",
        "for_8_gpus": "the demo (CLS vs SimPool: accuracy, mixed_rand gap, MaxBoxAccV2) runs end to end on this device",
    }


CHECKS: dict[str, Callable[[bool, torch.device], dict]] = {
    "tests": check_tests,
    "throughput": check_throughput,
    "simpool_vs_timm": check_simpool_vs_timm,
    "ddp": check_ddp,
    "dino_step": check_dino_step,
    "resume": check_resume,
    "loader": check_loader,
    "knn": check_knn,
    "probe_cache": check_probe_cache,
    "demo": check_demo,
}


def table(results: dict) -> str:
    """Per check: status, seconds and what it measured; under it, what that means for an 8-GPU ImageNet run."""
    lines = [f"{'check':<16} {'status':<7} {'seconds':>8}  measured / for an 8-GPU ImageNet run"]
    checks = results["checks"]
    for name, entry in checks.items():
        data = entry.get("result", {})
        if "error" in entry:
            lines.append(f"{name:<16} {entry['status']:<7} {entry['seconds']:>8.1f}  {entry['error'].splitlines()[0]}")
            continue
        meaning = data.get("for_8_gpus", "")
        if name == "loader" and "result" in checks.get("throughput", {}):  # what the model would consume
            rows = checks["throughput"]["result"]["rows"]
            consumed = max(r["images_per_s"] for r in rows if r["arm"] == "ResNet-50 SimPool")
            meaning += f"; the ResNet-50 SimPool model consumes {consumed:.0f} img/s/GPU"
        lines.append(f"{name:<16} {entry['status']:<7} {entry['seconds']:>8.1f}  {data.get('summary', '')}")
        lines.append(f"{'':<34}-> {meaning}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="every check at toy size (a CPU: under 3 min)")
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
