"""``benchmarks/gpu_check.py --smoke`` runs every check at toy size on the CPU, so the GPU script never rots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_gpu_check_smoke_runs_every_check(tmp_path):
    out = tmp_path / "gpu_check.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--smoke", "--out", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    checks = report["checks"]
    assert list(checks) == ["tests", "throughput", "simpool_vs_timm", "demo"]
    assert all(entry["status"] == "ok" for entry in checks.values()), {k: v.get("error") for k, v in checks.items()}
    for model in ("resnet10t", "vit_tiny_patch16_224"):
        rates = checks["throughput"]["result"][model]
        assert rates["baseline"]["images_per_s"] > 0 and rates["simpool"]["images_per_s"] > 0
    assert set(checks["simpool_vs_timm"]["result"]["ms"]) == {"ours", "timm"}
    demo = checks["demo"]["result"]
    assert "skipped" in demo or set(demo["results"]) == {"cls", "simpool"}
    assert "throughput" in result.stdout and "written:" in result.stdout  # the table
