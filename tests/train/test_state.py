"""``TrainingState``: what the supervised and DINO loops save and how they resume."""

import numpy as np
import pytest
import torch

from simpool.train.distributed import DistInfo
from simpool.train.run import RunFolder
from simpool.train.state import TrainingState

CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def objects(seed: int) -> dict:
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()  # a momentum buffer to save
    return {"model": model, "optimizer": optimizer}


def test_round_trip_restores_objects_counters_and_rng(tmp_path):
    folder = RunFolder(tmp_path / "run")
    saved = objects(0)
    TrainingState(folder, CPU, saved).save(epoch=3, update_in_epoch=5, update=17, best=0.25)
    expected_draw = torch.rand(3), np.random.rand()  # the streams continue from the save point
    fresh = objects(1)
    counters = TrainingState(folder, CPU, fresh).resume(True, torch.device("cpu"), seed=0)
    assert counters == {"epoch": 3, "update_in_epoch": 5, "update": 17, "best": 0.25}
    torch.testing.assert_close(fresh["model"].weight, saved["model"].weight)
    momentum = fresh["optimizer"].state_dict()["state"][0]["momentum_buffer"]
    torch.testing.assert_close(momentum, saved["optimizer"].state_dict()["state"][0]["momentum_buffer"])
    torch.testing.assert_close(torch.rand(3), expected_draw[0])
    assert np.random.rand() == expected_draw[1]


def test_fresh_start_seeds_and_drops_an_old_log(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.log({"epoch": 0, "train_loss": 1.0})
    state = TrainingState(folder, CPU, objects(0))
    state.save(epoch=1, update_in_epoch=0, update=4)
    assert state.resume(False, torch.device("cpu"), seed=7) == {}  # resume switched off: start over
    assert not folder.log_path.exists()
    draw = torch.rand(2)
    torch.manual_seed(7)  # seed + rank 0
    torch.testing.assert_close(draw, torch.rand(2))


def test_missing_objects_optional_or_not(tmp_path):
    folder = RunFolder(tmp_path / "run")
    TrainingState(folder, CPU, objects(0)).save(epoch=1, update_in_epoch=0, update=4)
    scaler = torch.amp.GradScaler("cpu")  # the saved run had none: it starts fresh
    with_scaler = TrainingState(folder, CPU, {**objects(1), "scaler": scaler})
    assert with_scaler.resume(True, torch.device("cpu"), seed=0)["update"] == 4
    with pytest.raises(KeyError, match="no 'scheduler' state"):
        scheduler = torch.optim.lr_scheduler.StepLR(objects(2)["optimizer"], 1)
        TrainingState(folder, CPU, {**objects(2), "scheduler": scheduler}).resume(True, torch.device("cpu"), seed=0)


def test_none_objects_are_left_out(tmp_path):
    folder = RunFolder(tmp_path / "run")
    TrainingState(folder, CPU, {**objects(0), "ema": None}).save(epoch=1, update_in_epoch=0, update=1)
    saved = torch.load(folder.last_state, weights_only=True)
    assert set(saved) == {"model", "optimizer", "epoch", "update_in_epoch", "update", "rng"}
