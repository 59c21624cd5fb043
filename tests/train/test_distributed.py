"""Process-group set-up: the device each process takes, the process-group timeout, rank 0's broadcasts."""

from __future__ import annotations

from datetime import timedelta

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
