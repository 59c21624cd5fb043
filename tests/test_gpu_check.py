"""``benchmarks/gpu_check.py --smoke`` runs every check at toy size on the CPU, so the GPU script never rots."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[1]
CHECKS = [
    "tests",
    "throughput",
    "simpool_vs_timm",
    "ddp",
    "dino_step",
    "resume",
    "loader",
    "knn",
    "probe_cache",
    "demo",
]


IMAGENET_TRAIN, GPUS = 1_281_167, 8


def epoch_minutes(rate: float) -> float:
    """Minutes of an ImageNet epoch on 8 GPUs at ``rate`` images/s each."""
    return IMAGENET_TRAIN / (GPUS * rate) / 60


def numbers(tree) -> list[float]:
    """Every number of a JSON tree (booleans and None left out)."""
    if isinstance(tree, dict):
        return [n for value in tree.values() for n in numbers(value)]
    if isinstance(tree, list):
        return [n for value in tree for n in numbers(value)]
    return [tree] if isinstance(tree, (int, float)) and not isinstance(tree, bool) else []


def check_throughput(result: dict) -> None:
    rows = result["rows"]
    assert all(r["images_per_s"] > 0 and (r["batch"], r["img_size"]) == (2, 32) for r in rows)
    assert all((r["peak_mib"] is None) == (not torch.cuda.is_available()) for r in rows)
    rate = {(r["arm"], r["mode"], r["amp"]): r["images_per_s"] for r in rows}
    for family, base in (("ResNet-50", "GAP"), ("ViT-S/16", "CLS")):
        ratio = rate[(f"{family} {base}", "compiled", "bf16")] / rate[(f"{family} SimPool", "compiled", "bf16")]
        assert result["simpool_overhead_pct"][family] == pytest.approx(100 * (ratio - 1))
        assert f"{family} SimPool overhead {100 * (ratio - 1):+.1f}%" in result["summary"]
    for arm in {r["arm"] for r in rows}:  # each arm's best rate, and the epoch it gives on 8 GPUs
        best = max(r["images_per_s"] for r in rows if r["arm"] == arm)
        assert f"{arm}: {best:.0f} img/s/GPU = {epoch_minutes(best):.1f} min/epoch" in result["for_8_gpus"]


def check_dino_step(result: dict) -> None:
    assert (result["batch_per_gpu"], result["out_dim"], result["crops"]) == (2, 256, [32, 32] + [16] * 6)
    assert result["loss_dtype"] == result["head_dtype"] == "torch.float32"
    rate = result["images_per_s"]
    assert rate == pytest.approx(2 / result["seconds_per_update"]) and rate > 0
    assert f"{result['seconds_per_update'] * 1e3:.0f} ms per update of 2 images x 8 crops" in result["summary"]
    assert f"{rate:.0f} img/s/GPU: a DINO epoch in {epoch_minutes(rate):.1f} min" in result["for_8_gpus"]


def check_equal_runs(result: dict, bound: float) -> None:
    """``ddp`` and ``resume``: the weights of the two runs agree, and the summary names their difference."""
    assert 0 <= result["max_abs_diff"] <= bound and f"max diff {result['max_abs_diff']:.2g}" in result["summary"]


def check_loader(result: dict) -> None:
    rates = result["images_per_s"]
    assert result["workers"] == 0 and set(rates) == {"supervised", "dino"} and min(rates.values()) > 0
    assert f"{rates['supervised']:.0f} img/s (ResNet-50 recipe" in result["summary"]
    assert f"{rates['dino']:.0f} img/s (DINO" in result["summary"]
    assert f"fed at most {GPUS * rates['supervised']:.0f} img/s in all" in result["for_8_gpus"]
    assert f"{GPUS * rates['dino']:.0f} (DINO)" in result["for_8_gpus"]


def check_knn(result: dict) -> None:
    assert (result["train"], result["test"], result["dim"]) == (2000, 200, 384) and result["seconds"] > 0
    full = result["seconds"] * (IMAGENET_TRAIN / 2000) * (50_000 / 200)  # the cost grows as train x test
    assert f"about {full:.0f} s on one GPU" in result["for_8_gpus"]


def check_probe_cache(result: dict) -> None:
    fill, read = result["fill_images_per_s"], result["read_images_per_s"]
    assert (result["images"], result["tokens_shape"], result["workers"]) == (32, [17, 32], 1)  # 4 x 4 patches + CLS
    assert fill > 0 and read > 0 and result["read_mb_per_s"] == pytest.approx(read * 17 * 32 * 2 / 2**20)
    assert f"fill {fill:.0f} img/s, read {read:.0f} img/s" in result["summary"]
    assert f"filled in {IMAGENET_TRAIN / (GPUS * fill) / 60:.1f} min by 8 GPUs" in result["for_8_gpus"]
    assert f"an epoch read in {IMAGENET_TRAIN / read / 60:.1f} min by one process" in result["for_8_gpus"]


def check_demo(result: dict) -> None:
    if "skipped" in result:  # no Fashion-MNIST on this machine
        assert result["summary"] == result["skipped"] and "Fashion-MNIST" in result["skipped"]
        return
    assert set(result["results"]) == {"cls", "simpool"} and result["config"]["train_images"] == 64
    for kind, figures in result["results"].items():
        assert f"{kind}: MaxBoxAccV2 {figures['MaxBoxAccV2']:.1f}" in result["summary"]
    assert f"({result['wall_seconds']:.0f} s)" in result["summary"] and result["wall_seconds"] > 0


def check_tests(result: dict) -> None:
    assert result["cuda"] == torch.cuda.is_available() and "failed" not in result["summary"]


def check_simpool_vs_timm(result: dict) -> None:
    assert result["shape"] == [2, 16, 4, 4] and min(result["ms"].values()) > 0
    assert result["speedup"] == pytest.approx(result["ms"]["timm"] / result["ms"]["ours"])
    assert f"ours {result['ms']['ours']:.2f} ms, timm {result['ms']['timm']:.2f} ms" in result["summary"]


def check_ddp(result: dict) -> None:
    check_equal_runs(result, 1e-4)
    assert result["backend"] == ("nccl" if torch.cuda.device_count() >= 2 else "gloo")


def check_resume(result: dict) -> None:
    check_equal_runs(result, 1e-5)
    assert result["updates"] == 4 and "stopped at update 2" in result["summary"]


FIGURES = {
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


def check_results(results: dict, stdout: str) -> None:
    """What the smoke run determines: every check ok, its figures finite and its sizes the smoke's, each summary
    and 8-GPU sentence naming the figures measured, and the table printing them."""
    checks = results["checks"]
    assert list(checks) == CHECKS and results["smoke"] is True
    assert all(entry["status"] == "ok" for entry in checks.values()), {k: v.get("error") for k, v in checks.items()}
    for name, entry in checks.items():
        result = entry["result"]
        assert entry["seconds"] > 0 and all(math.isfinite(n) for n in numbers(result)), name
        FIGURES[name](result)
        assert result["summary"] in stdout and result["for_8_gpus"] in stdout, name  # the table prints both
    consumed = max(r["images_per_s"] for r in checks["throughput"]["result"]["rows"] if r["arm"] == "ResNet-50 SimPool")
    assert f"the ResNet-50 SimPool model consumes {consumed:.0f} img/s/GPU" in stdout
    assert "for an 8-GPU ImageNet run" in stdout


@pytest.mark.slow
def test_gpu_check_smoke_runs_every_check(tmp_path):
    out = tmp_path / "gpu_check.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--smoke", "--out", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads(out.read_text())
    check_results(results, result.stdout)
    rows = results["checks"]["throughput"]["result"]["rows"]
    arms = {"ResNet-50 GAP", "ResNet-50 SimPool", "ViT-S/16 CLS", "ViT-S/16 GAP", "ViT-S/16 SimPool"}
    grid = {
        (arm, mode, amp) for arm in arms for mode, amp in (("eager", "bf16"), ("eager", "fp16"), ("compiled", "bf16"))
    }
    assert {(r["arm"], r["mode"], r["amp"]) for r in rows} == grid - {("ViT-S/16 GAP", "compiled", "bf16")}
    assert f"written: {out}" in result.stdout
