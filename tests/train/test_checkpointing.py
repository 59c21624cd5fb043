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
