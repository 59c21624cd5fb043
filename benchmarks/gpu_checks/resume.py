"""``resume``: a real model (ResNet-50 with SimPool, bf16) stopped half-way and resumed on the device ends with the
weights of the uninterrupted run."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from simpool import create_model
from simpool.train.engine import Engine, single_process
from simpool.train.recipe import CrossEntropyRecipe, Loop
from simpool.train.run import RunFolder

UPDATES = 4


def train(folder: Path | None, max_updates: int, smoke: bool, device: torch.device) -> torch.nn.Module:
    name, batch, size = ("resnet10t", 4, 32) if smoke else ("resnet50", 32, 224)
    torch.manual_seed(0)
    model = create_model(name, pool="simpool", pool_kwargs={"gamma": 2.0}, num_classes=10).to(device)
    generator = torch.Generator().manual_seed(1)
    micro = [
        (
            torch.randn(batch, 3, size, size, generator=generator).to(device),
            torch.arange(batch).remainder(10).to(device),
            0,
        )
        for _ in range(UPDATES)
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loop = Loop(amp="bf16", max_updates=max_updates, progress=False)
    Engine(
        CrossEntropyRecipe(model, optimizer, micro), loop, single_process(device), folder and RunFolder(folder)
    ).run()
    return model


def check_resume(smoke: bool, device: torch.device) -> dict:
    deterministic = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False  # the same kernels in both runs
    try:
        whole = train(None, 0, smoke, device)
        with tempfile.TemporaryDirectory() as folder:
            train(Path(folder), UPDATES // 2, smoke, device)
            resumed = train(Path(folder), 0, smoke, device)
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = deterministic
    pairs = zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True)
    diff = max((a.float() - b.float()).abs().max().item() for a, b in pairs)
    if diff > 1e-5:
        raise AssertionError(f"the resumed run differs from the uninterrupted one by {diff:.3g}")
    return {
        "updates": UPDATES,
        "max_abs_diff": diff,
        "summary": f"stopped at update {UPDATES // 2}, resumed: max diff {diff:.2g} from the uninterrupted run",
        "for_8_gpus": "a preempted ImageNet run resumes from last.pt with the weights it would have had",
    }
