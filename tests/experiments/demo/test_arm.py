"""One arm of the demo, a recipe run by the engine: its curves are evaluations of its checkpoints on the validation
split and leave the training unchanged."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from simpool.experiments.demo import (
    CURVE_KEYS,
    CURVE_VARIANTS,
    bench_vit,
    demo_config,
    evaluate_model,
    initial_vit,
    train_model,
)
from simpool.models import load_checkpoint
from simpool.train.engine import Engine
from simpool.train.run import RunFolder
from tests.experiments.conftest import needs_fmnist


class Stopped(Exception):
    """What the injected hook raises: the run dies after an update, before that update's state is saved."""


def _stop_after(update: int):
    def hook(engine) -> None:
        if engine.counters.update == update:
            raise Stopped

    return hook


@needs_fmnist
def test_curves_are_val_evaluations_with_checkpoints_and_leave_the_training_unchanged(tmp_path, capsys):
    # 48 images in batches of 16: 3 updates, measured at initialisation and after each; eval_split test
    config = demo_config("quick", train_images=48, batch_size=16, depth=1, curve_points=3, curve_images=8)
    assert config.eval_split == "test"
    device = torch.device("cpu")
    trained = train_model("simpool", config, device, progress=True, checkpoint_dir=tmp_path)
    points = trained["curves"]
    assert trained["steps"] == 3 and [p["step"] for p in points] == [0, 1, 2, 3]
    assert [p["epoch"] for p in points] == [0.0, 16 / 48, 32 / 48, 1.0]
    assert all(set(p) == {"step", "epoch", "checkpoint", *CURVE_KEYS} for p in points)
    assert "PxAP" in CURVE_KEYS
    # with progress on, each point is printed as it is measured, with its numbers
    printed = capsys.readouterr().out
    assert printed.count("simpool update ") == 4
    assert f"simpool update 3 (epoch 1.00): top-1 original {points[-1]['top1_original']:.3f}," in printed
    assert f"PxAP {points[-1]['PxAP']:.1f}, mask mass" in printed
    # the last point is the trained model scored on the val split's first 8 images, the first the initial model
    last = evaluate_model("simpool", trained["model"], config, device, False, CURVE_VARIANTS, 8, split="val")
    first = evaluate_model(
        "simpool", initial_vit("simpool", config), config, device, False, CURVE_VARIANTS, 8, split="val"
    )
    on_test = evaluate_model("simpool", trained["model"], config, device, False, CURVE_VARIANTS, 8)
    for key, name in CURVE_KEYS.items():
        assert (points[-1][key], points[0][key]) == (last[name], first[name])
    assert any(points[-1][key] != on_test[name] for key, name in CURVE_KEYS.items())  # not the test images
    # a checkpoint at each point: the first the initial state (kept by the arm), the last the trained model
    assert [p["checkpoint"] for p in points] == [str(tmp_path / f"simpool_{step}.safetensors") for step in range(4)]
    for point, state in ((points[0], trained["initial_state"]), (points[-1], trained["model"].state_dict())):
        saved = bench_vit("simpool", config)
        load_checkpoint(saved, point["checkpoint"])
        for name, value in saved.state_dict().items():
            assert torch.equal(value, state[name]), name
    for name, value in initial_vit("simpool", config).state_dict().items():
        assert torch.equal(value, trained["initial_state"][name]), name
    # the same weights and losses without the curves
    plain = train_model("simpool", dataclasses.replace(config, curve_points=0), device, progress=False)
    assert plain["curves"] == [] and plain["loss"] == trained["loss"] and plain["curve_seconds"] == 0.0
    for name, value in plain["model"].state_dict().items():
        assert torch.equal(value, trained["model"].state_dict()[name]), name


@needs_fmnist
def test_an_arm_stopped_mid_training_resumes_to_the_model_of_a_run_never_stopped(tmp_path, monkeypatch, capsys):
    torch.set_num_threads(1)
    # 96 images in batches of 16: 6 updates, a state saved after each (ceil(6 / 10) = 1), curves at 0, 2, 4, 6
    config = demo_config("quick", train_images=96, batch_size=16, depth=1, curve_points=3, curve_images=8)
    device = torch.device("cpu")
    whole = train_model("simpool", config, device, progress=False)
    folder = tmp_path / "simpool"
    monkeypatch.setattr(Engine, "update_hooks", (_stop_after(4),))  # dies after update 4, before saving it
    with pytest.raises(Stopped):
        train_model("simpool", config, device, progress=False, folder=RunFolder(folder))
    monkeypatch.setattr(Engine, "update_hooks", ())
    resumed = train_model("simpool", config, device, progress=False, folder=RunFolder(folder))
    assert f"resumed {folder} at epoch 0, update 3" in capsys.readouterr().out
    # the same weights, losses and curves (the flips' generator, AdamW and the cosine schedule resumed exactly)
    assert resumed["curves"] == whole["curves"] and [p["step"] for p in resumed["curves"]] == [0, 2, 4, 6]
    assert resumed["loss"] == whole["loss"] and resumed["steps"] == 6
    for name, value in whole["model"].state_dict().items():
        assert torch.equal(value, resumed["model"].state_dict()[name]), name
    # a finished arm run again is read back, not retrained; another setting is refused in one line
    again = train_model("simpool", config, device, progress=False, folder=RunFolder(folder))
    assert (again["curves"], again["loss"]) == (whole["curves"], whole["loss"])
    other = dataclasses.replace(config, lr=3e-3)
    with pytest.raises(ValueError, match=r"cannot resume .*lr: 0\.001 -> 0\.003") as refused:
        train_model("simpool", other, device, progress=False, folder=RunFolder(folder))
    assert "\n" not in str(refused.value)
    fresh = train_model("simpool", other, device, progress=False, folder=RunFolder(folder), resume=False)
    assert fresh["loss"] == train_model("simpool", other, device, progress=False)["loss"] != whole["loss"]
