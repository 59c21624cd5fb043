"""``TrainingState``: what the supervised and DINO loops save and how they resume."""

import numpy as np
import pytest
import torch

from simpool.train import state as state_module
from simpool.train.distributed import DistInfo
from simpool.train.run import RunFolder
from simpool.train.state import ResumeError, TrainingState

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
    with pytest.raises(ResumeError, match="no 'scheduler' state.*--no-resume"):
        scheduler = torch.optim.lr_scheduler.StepLR(objects(2)["optimizer"], 1)
        TrainingState(folder, CPU, {**objects(2), "scheduler": scheduler}).resume(True, torch.device("cpu"), seed=0)


def test_none_objects_are_left_out(tmp_path):
    folder = RunFolder(tmp_path / "run")
    TrainingState(folder, CPU, {**objects(0), "ema": None}).save(epoch=1, update_in_epoch=0, update=1)
    saved = torch.load(folder.last_state, weights_only=True)
    assert set(saved) == {"model", "optimizer", "epoch", "update_in_epoch", "update", "rng"}


def test_resume_reads_everything_on_the_cpu_whatever_the_device(tmp_path, monkeypatch):
    # On a GPU the old code loaded with map_location=device: the RNG states landed on CUDA and
    # set_rng_state failed on them. Here, without CUDA, map_location="cuda" fails at torch.load already.
    folder = RunFolder(tmp_path / "run")
    TrainingState(folder, CPU, objects(0)).save(epoch=1, update_in_epoch=0, update=2)
    restored = []
    monkeypatch.setattr(state_module, "set_rng_state", lambda rng: restored.append(rng))
    counters = TrainingState(folder, CPU, objects(1)).resume(True, torch.device("cuda"), seed=0)
    assert counters["update"] == 2
    assert {value.device.type for value in restored[0].values()} == {"cpu"}


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_resume_on_cuda_puts_optimizer_state_on_the_parameters_device(tmp_path):
    cuda = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cuda"))
    folder = RunFolder(tmp_path / "run")
    saved = objects(0)
    saved["model"].cuda()
    saved["optimizer"] = torch.optim.SGD(saved["model"].parameters(), lr=0.1, momentum=0.9)
    saved["model"](torch.randn(4, 3, device="cuda")).sum().backward()
    saved["optimizer"].step()
    torch.cuda.manual_seed(5)
    TrainingState(folder, cuda, saved).save(epoch=1, update_in_epoch=0, update=1)
    expected = torch.rand(3, device="cuda")
    model = torch.nn.Linear(3, 2).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    TrainingState(folder, cuda, {"model": model, "optimizer": optimizer}).resume(True, cuda.device, seed=0)
    assert optimizer.state_dict()["state"][0]["momentum_buffer"].device.type == "cuda"
    torch.testing.assert_close(torch.rand(3, device="cuda"), expected)  # the CUDA stream resumes too


def test_a_truncated_state_is_one_line_naming_the_file(tmp_path):
    folder = RunFolder(tmp_path / "run")
    TrainingState(folder, CPU, objects(0)).save(epoch=1, update_in_epoch=0, update=2)
    data = folder.last_state.read_bytes()
    folder.last_state.write_bytes(data[: len(data) // 2])  # a copy cut short
    with pytest.raises(ResumeError) as error:
        TrainingState(folder, CPU, objects(1)).resume(True, torch.device("cpu"), seed=0)
    message = str(error.value)
    assert "\n" not in message and str(folder.last_state) in message and "--no-resume" in message
    assert "truncated or corrupt" in message


@pytest.mark.parametrize("changed", ["model", "optimizer"])
def test_a_state_that_does_not_fit_the_objects_is_one_line(tmp_path, changed):
    folder = RunFolder(tmp_path / "run")
    TrainingState(folder, CPU, objects(0)).save(epoch=1, update_in_epoch=0, update=2)
    model = torch.nn.Linear(3, 5)  # another head: parameter shapes differ
    extra = torch.nn.Linear(5, 1)  # another optimizer: one more parameter in its group
    if changed == "model":
        fresh = {"model": model, "optimizer": torch.optim.SGD(model.parameters(), lr=0.1)}
    else:
        fresh = {"optimizer": torch.optim.SGD([*model.parameters(), *extra.parameters()], lr=0.1)}
    with pytest.raises(ResumeError, match=f"'{changed}' state does not fit") as error:
        TrainingState(folder, CPU, fresh).resume(True, torch.device("cpu"), seed=0)
    assert "\n" not in str(error.value) and "--no-resume" in str(error.value)


def test_whether_to_resume_is_rank_0s_decision(tmp_path, monkeypatch):
    # Rank 1 sees a last.pt that rank 0 does not (a stale copy on a node-local disk, a file written
    # between the two checks): it must start fresh with rank 0, not resume alone.
    folder = RunFolder(tmp_path / "run")
    TrainingState(folder, CPU, objects(0)).save(epoch=1, update_in_epoch=0, update=2)
    broadcasts = []

    def broadcast_object_list(box, src=0):  # rank 0 answered "no last.pt" (no note, no refusal)
        broadcasts.append((list(box), src))
        box[0] = (False, None, None)

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "broadcast_object_list", broadcast_object_list)
    rank1 = DistInfo(rank=1, world_size=2, local_rank=1, device=torch.device("cpu"))
    assert TrainingState(RunFolder(folder.path, is_main=False), rank1, objects(1)).resume(True, seed=0) == {}
    assert broadcasts == [([None], 0)]


def test_resume_checks_the_config_then_writes_it(tmp_path, capsys):
    from simpool.train.config import load_config
    from simpool.train.supervised.config import SupervisedConfig

    def config(*overrides):
        return load_config(SupervisedConfig, None, ["train.epochs=1", *overrides])

    folder = RunFolder(tmp_path / "run")
    assert TrainingState(folder, CPU, objects(0)).resume(True, seed=0, config=config()) == {}  # fresh
    assert folder.read_config()["train"]["epochs"] == 1
    TrainingState(folder, CPU, objects(0)).save(epoch=1, update_in_epoch=0, update=2)
    with pytest.raises(ResumeError, match="optim.lr: 0.0005 -> 0.5.*--no-resume") as error:
        TrainingState(folder, CPU, objects(1)).resume(True, seed=0, config=config("optim.lr=0.5"))
    assert str(folder.path) in str(error.value) and "\n" not in str(error.value)
    assert folder.read_config()["optim"]["lr"] == 5e-4  # the refused config was not written
    capsys.readouterr()
    counters = TrainingState(folder, CPU, objects(1)).resume(True, seed=0, config=config("train.epochs=2"))
    assert counters["update"] == 2 and "extending train.epochs from 1 to 2" in capsys.readouterr().out
    assert folder.read_config()["train"]["epochs"] == 2
    assert TrainingState(folder, CPU, objects(1)).resume(False, seed=0, config=config("optim.lr=0.5")) == {}


def test_every_rank_raises_rank_0s_config_refusal(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path / "run")
    TrainingState(folder, CPU, objects(0)).save(epoch=1, update_in_epoch=0, update=2)

    def broadcast_object_list(box, src=0):  # rank 0 found last.pt and refused the new config
        box[0] = (True, None, "the config differs from the saved config.yaml (optim.lr: 0.1 -> 0.5)")

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "broadcast_object_list", broadcast_object_list)
    rank1 = DistInfo(rank=1, world_size=2, local_rank=1, device=torch.device("cpu"))
    with pytest.raises(ResumeError, match="optim.lr: 0.1 -> 0.5"):
        TrainingState(RunFolder(folder.path, is_main=False), rank1, objects(1)).resume(True, seed=0, config=object())
