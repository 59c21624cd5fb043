"""SimPool's cost, as ratios measured in one run (interleaved repeats, medians).

1. The pool alone, forward + backward: our SimPool against timm's ``SimPool2d`` (direct formula)
   and GAP, on ResNet-50 features (64, 2048, 7, 7) with gamma 2 and ViT-S features
   (64, 384, 14, 14) with gamma 1.25.
   With torch.compile (inductor): SimPool and GAP compiled, against eager (``--no-compile`` leaves them out).
2. A whole training step (forward + backward) of ResNet-50 and ViT-S/16 at 224 with SimPool
   against their baselines (GAP, CLS token).

Usage:
    python benchmarks/pool_overhead.py                 # all, CPU or the GPU when there is one
    python benchmarks/pool_overhead.py --only pool --repeats 30 --out outputs/pool_overhead.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from record import record_head, write_record  # noqa: E402

from simpool import SimPool, create_model  # noqa: E402
from simpool.utils import default_device  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_interleaved(fns: dict, repeats: int, device: torch.device, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each function, calls interleaved so that drift hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _forward_backward(module, x):
    def step():
        x.grad = None
        module.zero_grad(set_to_none=True)
        out = module(x)
        out.float().square().mean().backward()

    return step


def bench_pools(device, repeats: int, batch: int, compiled: bool = True) -> list[dict]:
    rows = []
    for shape, gamma in (((batch, 2048, 7, 7), 2.0), ((batch, 384, 14, 14), 1.25)):
        torch.manual_seed(0)
        C = shape[1]
        ours = SimPool(C, gamma=gamma, min_over="channel", norm_eps=1e-5).to(device)
        reference = timm.layers.SimPool2d(C, gamma=gamma).to(device)
        ours.load_state_dict(reference.state_dict())
        x = torch.randn(shape, device=device, requires_grad=True)
        with torch.no_grad():  # same numbers before timing them
            torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-4)
        gap = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        paper = SimPool(C, gamma=gamma).to(device)  # the paper's per-sample minimum
        fns = {
            "simpool (ours, channel min)": _forward_backward(ours, x),
            "simpool (ours, sample min)": _forward_backward(paper, x),
            "timm SimPool2d": _forward_backward(reference, x),
            "gap": _forward_backward(gap, x),
        }
        if compiled:  # torch.compile's default backend (inductor); compiled here, before the timing
            fns["simpool compiled (sample min)"] = _forward_backward(torch.compile(paper, fullgraph=True), x)
            fns["gap compiled"] = _forward_backward(torch.compile(gap, fullgraph=True), x)
        times = time_interleaved(fns, repeats, device)
        base = times["timm SimPool2d"]
        for name, seconds in times.items():
            rows.append(
                {
                    "bench": "pool fwd+bwd",
                    "shape": list(shape),
                    "gamma": gamma,
                    "method": name,
                    "ms": 1e3 * seconds,
                    "speedup_vs_timm": base / seconds,
                    "vs_eager_simpool": seconds / times["simpool (ours, sample min)"],
                    "vs_gap": seconds / times["gap"],
                }
            )
    return rows


def _autograd_generalized_mean(values, attention, gamma, min_over):
    """The value path of SimPool by plain autograd ops: what the fused backward replaces."""
    from simpool.pooling.min_over import SHIFT_EPS, value_min
    from simpool.pooling.simpool import _weighted_sum

    shifted = values - value_min(values, min_over) + SHIFT_EPS  # (B, N, C)
    return _weighted_sum(attention, shifted**gamma) ** (1.0 / gamma)  # (B, C)


def bench_value_path(device, repeats: int, batch: int, compiled: bool = True) -> list[dict]:
    """``(sum_n a_n V_n^gamma)^(1/gamma)`` forward + backward: our fused backward against autograd's.

    Compiled (inductor): what it makes of the custom autograd function, against the plain operations of
    ``simpool_graph.generalized_mean`` that ``SimPool`` runs under ``torch.compile``.
    """
    from simpool.pooling.simpool import _GeneralizedMean
    from simpool.pooling.simpool_graph import generalized_mean

    rows = []
    for (N, C), gamma in (((49, 2048), 2.0), ((196, 384), 1.25)):
        torch.manual_seed(0)
        values = torch.randn(batch, N, C, device=device, requires_grad=True)  # (B, N, C)
        attention = torch.softmax(torch.randn(batch, 1, N, device=device), -1).requires_grad_()  # (B, 1, N)

        def step(fn, values=values, attention=attention, gamma=gamma):
            def run():
                values.grad = attention.grad = None
                fn(values, attention, gamma, "sample").sum().backward()

            return run

        fns = {"fused": step(_GeneralizedMean.apply), "autograd": step(_autograd_generalized_mean)}
        if compiled:
            fns["fused compiled"] = step(torch.compile(_GeneralizedMean.apply, fullgraph=True))
            fns["plain compiled"] = step(torch.compile(generalized_mean, fullgraph=True))
        times = time_interleaved(fns, repeats, device)
        for name, seconds in times.items():
            rows.append(
                {
                    "bench": "value path fwd+bwd",
                    "shape": [batch, N, C],
                    "gamma": gamma,
                    "method": name,
                    "ms": 1e3 * seconds,
                    "speedup_vs_autograd": times["autograd"] / seconds,
                }
            )
    return rows


def bench_steps(device, repeats: int, batch: int) -> list[dict]:
    rows = []
    for name in ("resnet50", "vit_small_patch16_224"):
        torch.manual_seed(0)
        x = torch.randn(batch, 3, 224, 224, device=device)
        target = torch.randint(0, 1000, (batch,), device=device)
        models = {pool: create_model(name, pool=pool).to(device).train() for pool in ("default", "simpool")}

        def step(model, x=x, target=target):
            def run():
                model.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), target).backward()

            return run

        times = time_interleaved({pool: step(m) for pool, m in models.items()}, repeats, device, warmup=1)
        for pool, seconds in times.items():
            rows.append(
                {
                    "bench": "train step fwd+bwd",
                    "model": name,
                    "batch": batch,
                    "method": pool,
                    "ms": 1e3 * seconds,
                    "overhead_vs_baseline": seconds / times["default"] - 1.0,
                }
            )
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("pool", "value", "step"), default=None)
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per method (pool benchmark)")
    parser.add_argument("--step-repeats", type=int, default=5, help="timed steps per model (train-step benchmark)")
    parser.add_argument("--pool-batch", type=int, default=64)
    parser.add_argument("--step-batch", type=int, default=16)
    parser.add_argument("--out", "--json", default=None, help="write the rows as JSON here, with the command and load")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile rows")
    args = parser.parse_args(argv)
    head = record_head()
    device = default_device()
    print(f"device: {device}, torch {torch.__version__}, timm {timm.__version__}")
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    rows = []
    if args.only in (None, "pool"):
        pool_rows = bench_pools(device, args.repeats, args.pool_batch, not args.no_compile)
        rows += pool_rows
        for r in pool_rows:
            print(
                f"pool {r['shape']} gamma={r['gamma']:<5} {r['method']:<30} {r['ms']:9.2f} ms  "
                f"{r['speedup_vs_timm']:6.2f}x vs timm  {r['vs_eager_simpool']:5.2f}x eager simpool  "
                f"{r['vs_gap']:6.2f}x gap"
            )
    if args.only in (None, "value"):
        value_rows = bench_value_path(device, args.repeats, args.pool_batch, not args.no_compile)
        rows += value_rows
        for r in value_rows:
            print(
                f"value path {r['shape']} gamma={r['gamma']:<5} {r['method']:<14} {r['ms']:9.2f} ms  "
                f"{r['speedup_vs_autograd']:5.2f}x vs autograd"
            )
    if args.only in (None, "step"):
        step_rows = bench_steps(device, args.step_repeats, args.step_batch)
        rows += step_rows
        for r in step_rows:
            print(
                f"step {r['model']:<24} batch {r['batch']} {r['method']:<8} {r['ms']:9.1f} ms  "
                f"overhead {100 * r['overhead_vs_baseline']:+.2f}%"
            )
    if args.out:
        write_record(args.out, head, {"device": str(device), "timm": timm.__version__, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
