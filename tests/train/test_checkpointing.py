"""Training state files: atomic (old or new, never half), weights_only-loadable, RNG states round-trip."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import simpool.utils
from simpool.train.checkpointing import load_state, rng_state, save_state, set_rng_state


def test_state_round_trips_with_weights_only(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "epoch": 2, "best": -1.5, "rng": [rng_state()]}
    save_state(state, tmp_path / "last.pt")
    loaded = load_state(tmp_path / "last.pt")  # torch.load(weights_only=True) inside
    assert torch.equal(loaded["model"]["w"], torch.arange(3.0)) and loaded["epoch"] == 2 and loaded["best"] == -1.5


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_state({"epoch": 1}, path)

    def crash(*args):  # the process dies between writing the temporary file and the rename
        raise OSError("disk full")

    monkeypatch.setattr(simpool.utils.os, "replace", crash)
    with pytest.raises(OSError):
        save_state({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_state(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_rng_states_restore_every_generator():
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state
    saved = rng_state()
    first = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], random.gauss(0, 1))
    set_rng_state(saved)
    second = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], random.gauss(0, 1))
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert first[2:] == second[2:]


class OnDevice(torch.Tensor):
    """Stands in for a CUDA tensor on a CPU-only machine: host reads (``.numpy()``, ``int()``, ``float()``,
    ``.tolist()``, ``.item()``) raise, as they do on device memory, until ``.cpu()`` copies it to the host."""

    def cpu(self, *args, **kwargs):
        return self.as_subclass(torch.Tensor).clone()

    def _refuse(self, *args, **kwargs):
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() first.")

    numpy = tolist = item = __int__ = __float__ = __index__ = _refuse


def test_rng_states_restore_from_device_tensors():
    torch.manual_seed(4), np.random.seed(4), random.seed(4)
    saved = {key: value.as_subclass(OnDevice) for key, value in rng_state().items()}
    first = (torch.rand(2), np.random.rand(2), random.random())
    set_rng_state(saved)
    second = (torch.rand(2), np.random.rand(2), random.random())
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1]) and first[2] == second[2]


@pytest.fixture
def one_visible_gpu(monkeypatch):
    """torch.cuda as a process that sees one GPU: states set on device 0 are recorded, device 1+ fail."""
    restored = []

    def set_state(state, device="cuda"):
        index = device if isinstance(device, int) else torch.device(device).index or 0
        if index >= 1:
            raise RuntimeError(f"CUDA error: invalid device ordinal {index}")
        restored.append((index, state))

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_rng_state", set_state)
    monkeypatch.setattr(torch.cuda.random, "set_rng_state", set_state)  # what set_rng_state_all calls
    return restored


def test_cuda_states_of_more_gpus_than_visible_restore_what_fits(one_visible_gpu):
    state = rng_state()
    state["cuda"] = torch.arange(4 * 16, dtype=torch.uint8).reshape(4, 16)  # saved by a process seeing 4 GPUs
    set_rng_state(state)  # was: set_rng_state_all -> invalid device ordinal 1
    assert len(one_visible_gpu) == 1 and one_visible_gpu[0][0] == 0
    assert torch.equal(one_visible_gpu[0][1], state["cuda"][0])


def test_a_single_cuda_state_goes_to_the_current_device(one_visible_gpu):
    state = {**rng_state(), "cuda": torch.arange(16, dtype=torch.uint8).reshape(1, 16)}
    set_rng_state(state)
    assert [index for index, _ in one_visible_gpu] == [0] and torch.equal(one_visible_gpu[0][1], state["cuda"][0])


def test_a_cuda_state_without_a_gpu_is_skipped():
    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only case")
    torch.manual_seed(3)
    saved = rng_state()
    expected = torch.rand(4)
    torch.manual_seed(4)  # another stream: restoring must bring back the saved one
    set_rng_state({**saved, "cuda": torch.zeros(2, 16, dtype=torch.uint8)})  # no error for the CUDA part
    assert torch.equal(torch.rand(4), expected)
