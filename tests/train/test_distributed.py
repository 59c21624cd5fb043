"""Process-group set-up: the device each process takes, the process-group timeout, rank 0's broadcasts."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from simpool.train.config import LoopConfig
from simpool.train.distributed import DistInfo, broadcast_object, init_distributed


@pytest.fixture
def torchrun_env(monkeypatch):
    """torchrun's environment for ``(rank, world_size, local_rank)``; the process group is recorded, not joined."""
    joined = []
    monkeypatch.setattr(dist, "is_initialized", lambda: bool(joined))
    monkeypatch.setattr(dist, "init_process_group", lambda **kwargs: joined.append(kwargs))

    def set_env(rank: int, world_size: int, local_rank: int):
        for key, value in {"RANK": rank, "WORLD_SIZE": world_size, "LOCAL_RANK": local_rank}.items():
            monkeypatch.setenv(key, str(value))
        return joined

    return set_env


def test_a_process_that_sees_one_gpu_takes_cuda_0(torchrun_env, monkeypatch):
    # CUDA_VISIBLE_DEVICES=<local rank> per process: local rank 3 sees its GPU as cuda:0
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: chosen.append(index))
    torchrun_env(rank=3, world_size=4, local_rank=3)
    info = init_distributed("cuda")
    assert chosen == [0] and info.device == torch.device("cuda", 0) and info.local_rank == 3


def test_every_gpu_visible_gives_cuda_local_rank(torchrun_env, monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: chosen.append(index))
    torchrun_env(rank=11, world_size=16, local_rank=3)  # node 1 of 2
    assert init_distributed("cuda").device == torch.device("cuda", 3) and chosen == [3]


def test_the_process_group_timeout_is_a_setting(torchrun_env):
    joined = torchrun_env(rank=1, world_size=2, local_rank=1)
    init_distributed("cpu")
    assert joined[-1]["timeout"] == timedelta(seconds=LoopConfig().dist_timeout_s) == timedelta(minutes=30)
    joined.clear()
    init_distributed("cpu", timeout_s=7200)
    assert joined == [{"backend": "gloo", "init_method": "env://", "timeout": timedelta(hours=2)}]
    with pytest.raises(ValueError, match="timeout"):
        init_distributed("cpu", timeout_s=0)


def test_broadcast_object_hands_every_rank_rank_0s_value(monkeypatch):
    single = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    assert broadcast_object("mine", single) == "mine"  # one process: no collective
    sent = []

    def broadcast_object_list(box, src=0):
        sent.append(list(box))
        box[0] = "rank 0's"

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "broadcast_object_list", broadcast_object_list)
    rank1 = DistInfo(rank=1, world_size=2, local_rank=1, device=torch.device("cpu"))
    assert broadcast_object("mine", rank1) == "rank 0's" and sent == [[None]]


LEAVE_SCRIPT = """
import json, os, sys, torch
from types import SimpleNamespace
from pathlib import Path
from torch import nn
from simpool.train.launch import launch
from simpool.train.recipe import Loop, Parts, Recipe
def gloo_threads():  # names as Linux shows them: gloo_tcp_loop, pt_gloo_runloop
    names = (open(f"/proc/self/task/{task}/comm").read().strip() for task in os.listdir("/proc/self/task"))
    return sum("gloo" in name for name in names)

class OneUpdate(Recipe):
    loop = Loop(progress=False)
    run_dir = Path(sys.argv[1]) / "leave"
    def build(self, info):
        torch.manual_seed(0)
        model = nn.Linear(6, 3)
        return Parts(model, torch.optim.SGD(model.parameters(), lr=0.1), 1, 1)
    def batches(self, epoch, start):
        return iter([(torch.randn(2, 6), torch.zeros(2), 0)])
    def step(self, model, inputs, targets, weight):
        return model(inputs).square().mean(), len(targets)
    def summary(self, row):
        seen["during"] = gloo_threads()
        if sys.argv[2] == "fail":
            raise RuntimeError("the run fails after its first update")
        return {}

seen = {}
config = SimpleNamespace(train=SimpleNamespace(device="cpu", dist_timeout_s=60))
try:
    launch(OneUpdate(), config)
    seen["after"] = gloo_threads()
except RuntimeError as error:  # counted while the error is alive, as when it reaches the top and the process ends
    seen["error"], seen["after"] = str(error), gloo_threads()
with open(f"{sys.argv[1]}/rank{os.environ['RANK']}.json", "w") as file:
    json.dump(seen, file)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in Linux /proc")
@pytest.mark.parametrize("outcome", ["succeed", "fail"])
def test_a_run_leaves_no_process_group_thread_for_interpreter_shutdown(tmp_path, torchrun, outcome):
    """gloo's threads end when a run ends, whether it succeeds or fails, not at interpreter shutdown: a
    process group that outlives ``destroy_process_group`` (a DDP module still holding it) is torn down
    there, and the process can abort at random ("terminate called without an active exception"), as CI saw."""
    script = tmp_path / "leave.py"
    script.write_text(LEAVE_SCRIPT)
    done = torchrun(script, tmp_path, outcome, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in range(2):
        seen = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert seen["during"] > 0 and seen["after"] == 0, seen
        assert ("error" in seen) == (outcome == "fail")
