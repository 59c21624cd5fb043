"""``ddp``: two processes (``torchrun``, gloo where there is one GPU) equal one process with the same global batch,
through ``torch.compile``, accumulation under ``no_sync`` and a resume."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from .common import ROOT
from .ddp_worker import ACCUM, UPDATES, build_model, global_micro_batches


def one_process(smoke: bool, device: torch.device) -> dict[str, torch.Tensor]:
    """The same global micro-batches and updates in one process, uninterrupted, eager, in full float32 (the
    throughput check turned TF32 on in this process; the workers start with it off)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    model = build_model(smoke, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    batches = global_micro_batches(smoke)
    for update in range(UPDATES):
        for images, labels in batches[update * ACCUM : (update + 1) * ACCUM]:
            (F.cross_entropy(model(images.to(device)), labels.to(device)) / ACCUM).backward()
        optimizer.step()
        optimizer.zero_grad()
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def check_ddp(smoke: bool, device: torch.device) -> dict:
    torchrun = Path(sys.executable).parent / "torchrun"
    with tempfile.TemporaryDirectory() as folder:
        command = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "gpu_checks.ddp_worker", folder]
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'benchmarks'}", "OMP_NUM_THREADS": "1"}
        result = subprocess.run(
            command + ["1" if smoke else "0"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        if result.returncode != 0:
            raise RuntimeError(f"torchrun failed ({result.returncode}): {result.stderr[-3000:]}")
        weights = torch.load(Path(folder) / "ddp_weights.pt", weights_only=True)
    reference = one_process(smoke, device)
    diff = max((weights[k].float() - reference[k].float()).abs().max().item() for k in reference)
    scale = max(reference[k].float().abs().max().item() for k in reference)
    if not diff <= 1e-4 * scale + 1e-5:
        raise AssertionError(f"2 processes differ from 1 by {diff:.3g} (weights up to {scale:.3g})")
    backend = "nccl" if torch.cuda.device_count() >= 2 else "gloo"
    return {
        "backend": backend,
        "max_abs_diff": diff,
        "summary": f"2 processes ({backend}, compiled, accumulation {ACCUM}, resumed) = 1 process: max diff {diff:.2g}",
        "for_8_gpus": "8 processes train the weights of one process with the same global batch, also after a resume",
    }
