"""Each arm's learning rate chosen on the validation split (``simpool demo --choose-lr``): by hand from hand-made
val reports, the refusals of runs that are not one grid, and the arm's own rate reaching its optimizer."""

from __future__ import annotations

import json
import re

import pytest
import torch

from simpool.cli import main
from simpool.experiments.demo import BenchArm, choose_lr, demo_config
from tests.conftest import demo_report, write_report_runs
from tests.experiments.conftest import needs_fmnist

# val top-1 on original by lr: CLS best at 1e-3, SimPool best at 3e-3
TOP1 = {3e-4: (0.70, 0.70), 1e-3: (0.75, 0.74), 3e-3: (0.72, 0.78)}


def val_report(lr: float, cls: float, simpool: float, **config) -> dict:
    report = demo_report(0, (50.0, 40.0, 30.0), lr=lr, eval_split="val", **config)
    for kind, top1 in (("cls", cls), ("simpool", simpool)):
        report["results"][kind] = {**report["results"][kind], "acc_original": top1}
    return report


def grid_runs(tmp_path, top1=TOP1) -> list[str]:
    return write_report_runs(tmp_path, [val_report(lr, *scores) for lr, scores in top1.items()])


def test_each_arm_takes_its_best_val_rate(tmp_path):
    choice = choose_lr(grid_runs(tmp_path))
    assert (choice["arms"]["cls"]["lr"], choice["arms"]["simpool"]["lr"]) == (1e-3, 3e-3)
    assert choice["overrides"] == "cls_lr=0.001 simpool_lr=0.003"
    assert [p["lr"] for p in choice["arms"]["simpool"]["grid"]] == [3e-4, 1e-3, 3e-3]
    assert [p["acc_original"] for p in choice["arms"]["cls"]["grid"]] == [0.70, 0.75, 0.72]
    assert choice["criterion"] == "acc_original" and choice["split"] == "val"
    assert "lr" not in choice["config"] and choice["config"]["epochs"] == 2.0
    # a tie goes to the smaller rate
    tied = choose_lr(grid_runs(tmp_path / "tie", {1e-3: (0.7, 0.7), 3e-4: (0.7, 0.6)}))
    assert tied["arms"]["cls"]["lr"] == 3e-4 and tied["arms"]["simpool"]["lr"] == 1e-3


def test_a_grid_of_own_rates_reads_each_arms_rate(tmp_path):
    # lr fixed, the arms' own rates varied: each arm's grid is its own rates
    reports = [val_report(1e-3, 0.6, 0.7, cls_lr=5e-4), val_report(1e-3, 0.8, 0.5, cls_lr=2e-3, simpool_lr=4e-3)]
    choice = choose_lr(write_report_runs(tmp_path, reports))
    assert [p["lr"] for p in choice["arms"]["cls"]["grid"]] == [5e-4, 2e-3]
    assert [p["lr"] for p in choice["arms"]["simpool"]["grid"]] == [1e-3, 4e-3]
    assert choice["overrides"] == "cls_lr=0.002 simpool_lr=0.001"


def test_choose_lr_command_writes_the_choice_and_prints_the_overrides(tmp_path, capsys):
    out = tmp_path / "choice"
    assert main(["demo", "--choose-lr", *grid_runs(tmp_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    written = json.loads((out / "lr_choice.json").read_text())
    assert written["arms"]["simpool"]["lr"] == 3e-3 and written["table"] in printed
    # lr, top-1 original, mixed_rand, MaxBoxAccV2; beside it the strongest fixed map (box_prior 22) and the own mean map
    assert "| cls | 0.001 | 0.750 | 0.600 | 40.0 | 22.0 | 30.0 | yes |" in printed
    assert "| cls | 0.003 | 0.720 | 0.600 | 40.0 | 22.0 | 30.0 |  |" in printed
    assert "| simpool | 0.003 | 0.780 | 0.600 | 50.0 | 22.0 | 31.0 | yes |" in printed
    assert "simpool demo ... cls_lr=0.001 simpool_lr=0.003" in printed


@pytest.mark.parametrize(
    "reports, message",
    [
        ([val_report(1e-3, 0.5, 0.5)], "needs at least two run folders"),
        ([val_report(1e-3, 0.5, 0.5), {**val_report(3e-3, 0.5, 0.5), "config": {"lr": 3e-3}}], "scored on None"),
        (
            [val_report(1e-3, 0.5, 0.5), demo_report(0, (1, 1, 1), lr=3e-3, eval_split="test")],
            "scored on 'test': choose learning rates on runs with eval_split=val",
        ),
        (
            [val_report(1e-3, 0.5, 0.5), val_report(3e-3, 0.5, 0.5, epochs=3.0)],
            "differs from .*run0 in epochs \\(3.0 against 2.0\\): a grid varies the learning rate alone",
        ),
        (
            [val_report(1e-3, 0.5, 0.5), val_report(3e-3, 0.5, 0.5, cls_lr=1e-3)],
            "run1 and .*run0 both train cls at lr 0.001: one run per rate",
        ),
    ],
)
def test_choose_lr_refuses_what_is_not_one_val_grid_in_one_line(tmp_path, capsys, reports, message):
    runs = write_report_runs(tmp_path, reports)
    assert main(["demo", "--choose-lr", *runs, "--out", str(tmp_path / "choice")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert re.search(message, err), err
    assert not (tmp_path / "choice").exists()


def test_choose_lr_takes_no_overrides_and_not_pair(tmp_path, capsys):
    runs = grid_runs(tmp_path)
    assert main(["demo", "lr=1e-3", "--choose-lr", *runs]) == 2
    assert "--choose-lr reads finished runs" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--pair", *runs, "--choose-lr", *runs])
    assert exit_info.value.code == 2


def test_arm_lr_is_the_arms_own_else_lr():
    config = demo_config("quick", lr=1e-3, simpool_lr=3e-3)
    assert (config.arm_lr("cls"), config.arm_lr("simpool")) == (1e-3, 3e-3)
    with pytest.raises(ValueError, match="unknown model kind 'gap'; valid kinds: cls, simpool"):
        config.arm_lr("gap")
    with pytest.raises(ValueError, match="config key 'cls_lr' must be in \\(0, inf\\), got 0"):
        demo_config("quick", cls_lr=0.0)


@needs_fmnist
def test_each_arm_trains_at_its_own_rate():
    config = demo_config("quick", train_images=32, batch_size=16, depth=1, curve_points=0, cls_lr=2e-3)
    for kind, lr in (("cls", 2e-3), ("simpool", config.lr)):
        parts = BenchArm(kind, config, torch.device("cpu"), progress=False).build(None)
        assert {group["initial_lr"] for group in parts.optimizer.param_groups} == {lr}
