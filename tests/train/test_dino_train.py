"""End-to-end DINO runs on a tiny ImageFolder: learning, teacher export, exact resume, the CLI and the recipes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from simpool.models import load_checkpoint, pool_slot
from simpool.train.checkpointing import load_state
from simpool.train.config import load_config
from simpool.train.dino.config import DinoConfig
from simpool.train.dino.recipe import build_student_teacher, train_dino
from tests.conftest import TINY_VIT_YAML as TINY

REPO = Path(__file__).parents[2]


def dino_overrides(data: Path, output: Path, **extra) -> list[str]:
    """A 1-block width-32 SimPool ViT, 2 global 32 px + 2 local 16 px crops, a width-64 head, one CPU thread."""
    values = {
        "model.name": "vit_tiny_patch16_224",
        "model.kwargs": TINY,
        "model.pool_kwargs": "{gamma: 1.25}",
        "data.root": str(data),
        "data.num_workers": 0,
        "data.global_size": 32,
        "data.local_size": 16,
        "data.local_crops_number": 2,
        "head.out_dim": 64,
        "head.hidden_dim": 32,
        "head.bottleneck_dim": 16,
        "optim.warmup_epochs": 0,
        "optim.lr": 0.2,  # per 256 images: 0.2 * 8 / 256 = 6.25e-3 for a batch of 8
        "train.epochs": 2,
        "train.batch_size": 8,
        "train.device": "cpu",
        "train.num_threads": 1,
        "train.output": str(output),
        "train.name": "run",
    }
    values.update({key.replace("__", "."): value for key, value in extra.items()})
    return [f"{key}={value}" for key, value in values.items()]


def read_log(folder: Path) -> list[dict]:
    with open(folder / "log.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_two_epochs_lower_the_loss_and_export_a_loadable_teacher(tiny_data, tmp_path, tiny_vit):
    config = load_config(DinoConfig, None, dino_overrides(tiny_data, tmp_path / "runs", monitor__every=2))
    result = train_dino(config)
    folder = Path(result["run_dir"])
    rows = read_log(folder)
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    assert 0.0 <= float(rows[1]["knn_top1"]) <= 100.0 and rows[0]["knn_top1"] == ""  # monitor every 2 epochs
    assert load_config(DinoConfig, folder / "config.yaml") == config
    # the teacher backbone loads strictly into a fresh create_model(..., num_classes=0) for evaluation
    model = tiny_vit(pool_kwargs={"gamma": 1.25}, num_classes=0)
    load_checkpoint(model, folder / "teacher.safetensors")
    state = load_state(folder / "last.pt")
    teacher = {k.removeprefix("backbone."): v for k, v in state["teacher"].items() if k.startswith("backbone.")}
    assert all(torch.equal(model.state_dict()[k], v) for k, v in teacher.items())
    student = {k.removeprefix("backbone."): v for k, v in state["student"].items() if k.startswith("backbone.")}
    assert any(not torch.equal(student[k], v) for k, v in teacher.items())  # EMA: teacher lags the student
    assert state["dino_loss"]["center"].abs().sum() > 0  # the centre moved


def test_student_and_teacher_share_the_simpool_gamma_and_start_equal():
    kwargs = TINY.replace("depth: 1", "depth: 2")  # timm's drop-path rate rises linearly from 0 at block 0
    config = load_config(
        DinoConfig,
        None,
        [
            "model.name=vit_tiny_patch16_224",
            f"model.kwargs={kwargs}",
            "model.pool_kwargs={gamma: 2.0}",
            "head.out_dim=16",
        ],
    )
    student, teacher = build_student_teacher(config)
    assert pool_slot(student.backbone).pool.gamma == pool_slot(teacher.backbone).pool.gamma == 2.0
    assert all(
        torch.equal(a, b) for a, b in zip(student.state_dict().values(), teacher.state_dict().values(), strict=True)
    )
    assert not any(p.requires_grad for p in teacher.parameters())
    # drop-path in the student only (DINO)
    assert type(student.backbone.blocks[1].drop_path1).__name__ == "DropPath"
    assert type(teacher.backbone.blocks[1].drop_path1).__name__ == "Identity"
    # ViTs get dynamic image size: a 16 px local crop passes
    assert student(torch.randn(2, 3, 16, 16)).shape == (2, 16)


def test_stop_mid_epoch_then_resume_gives_the_uninterrupted_weights(tiny_data, tmp_path):
    # 4 updates per epoch; the interrupted run stops after update 3 and saves (epoch 0, update 3);
    # drop-path (torch RNG), the augmentations, the centre and AdamW's moments all have to be restored.
    two_blocks = {"model__kwargs": TINY.replace("depth: 1", "depth: 2"), "model__drop_path_rate": 0.5}
    train_dino(load_config(DinoConfig, None, dino_overrides(tiny_data, tmp_path / "straight", **two_blocks)))
    cut = dino_overrides(tiny_data, tmp_path / "cut", train__max_updates=3, **two_blocks)
    train_dino(load_config(DinoConfig, None, cut))
    state = load_state(tmp_path / "cut" / "run" / "last.pt")
    assert (state["epoch"], state["update_in_epoch"], state["update"]) == (0, 3, 3)
    train_dino(load_config(DinoConfig, None, dino_overrides(tiny_data, tmp_path / "cut", **two_blocks)))
    expected = load_file(tmp_path / "straight" / "run" / "teacher.safetensors")
    actual = load_file(tmp_path / "cut" / "run" / "teacher.safetensors")
    assert all(torch.equal(expected[key], actual[key]) for key in expected)
    straight = load_state(tmp_path / "straight" / "run" / "last.pt")
    resumed = load_state(tmp_path / "cut" / "run" / "last.pt")
    assert torch.equal(straight["dino_loss"]["center"], resumed["dino_loss"]["center"])
    assert all(torch.equal(v, resumed["student"][k]) for k, v in straight["student"].items())
    assert [row["epoch"] for row in read_log(tmp_path / "cut" / "run")] == ["0", "1"]


@pytest.mark.slow
def test_sigkill_then_resume_through_the_cli(tiny_data, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}

    def cli(output: Path, **extra) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "simpool.cli", "train-dino", *dino_overrides(tiny_data, output, **extra)]
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)

    straight = cli(tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-2000:]
    killed = cli(tmp_path / "killed", train__checkpoint_every=2, train__kill_at_update=7)
    assert killed.returncode == -9, killed.stderr[-2000:]
    state = load_state(tmp_path / "killed" / "run" / "last.pt")
    assert (state["epoch"], state["update_in_epoch"], state["update"]) == (1, 2, 6)
    resumed = cli(tmp_path / "killed", train__checkpoint_every=2)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected = load_file(tmp_path / "straight" / "run" / "teacher.safetensors")
    actual = load_file(tmp_path / "killed" / "run" / "teacher.safetensors")
    assert all(torch.equal(expected[key], actual[key]) for key in expected)


@pytest.mark.parametrize("recipe", sorted(p.name for p in (REPO / "configs").glob("dino_*.yaml")))
def test_every_recipe_resolves(recipe):
    config = load_config(DinoConfig, REPO / "configs" / recipe)
    assert config.data.local_crops_number == 6
    assert config.data.global_size > config.data.local_size


def test_cli_print_config_and_unknown_key(capsys):
    from simpool.cli import main

    assert (
        main(
            [
                "train-dino",
                "--config",
                str(REPO / "configs" / "dino_resnet50_simpool.yaml"),
                "--print-config",
                "optim.lr=0.1",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "opt: lars" in printed and "lr: 0.1" in printed
    assert main(["train-dino", "optim.lrr=0.1"]) == 2
    assert "optim.lrr" in capsys.readouterr().out


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tiny_data, tmp_path, torchrun):
    # The same global batch of 8 per update, split 4 + 4 over two processes: gradients are averaged by DDP
    # and the teacher's center by an all-reduce, so the teachers agree up to the order of float sums.
    # No drop path: its random stream differs per process.
    extra = dict(model__drop_path_rate=0.0, train__epochs=1)
    one = train_dino(load_config(DinoConfig, None, dino_overrides(tiny_data, tmp_path / "one", **extra)))
    two = torchrun(
        "-m", "simpool.cli", "train-dino", *dino_overrides(tiny_data, tmp_path / "two", **extra), timeout=300
    )
    assert two.returncode == 0, two.stderr[-3000:]
    expected = load_file(Path(one["run_dir"]) / "teacher.safetensors")
    actual = load_file(tmp_path / "two" / "run" / "teacher.safetensors")
    assert set(expected) == set(actual)
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=1e-4, atol=1e-5, msg=key)
    state_one = load_state(Path(one["run_dir"]) / "last.pt")
    state_two = load_state(tmp_path / "two" / "run" / "last.pt")
    assert state_one["update"] == state_two["update"] == 4  # 32 images, 8 per update
    center_one, center_two = state_one["dino_loss"]["center"], state_two["dino_loss"]["center"]
    assert center_one.abs().sum() > 0  # the center moved from its zero start
    torch.testing.assert_close(center_two, center_one, rtol=1e-4, atol=1e-6)  # reduced over both processes


WRAP_TEACHER_SCRIPT = """
import json, sys, torch
from torch import nn
from simpool.train.distributed import cleanup, init_distributed
from simpool.train.dino.recipe import wrap_teacher
def main():  # DDP inside a function: gone before cleanup (see distributed.cleanup)
    info = init_distributed("cpu")
    teacher = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    for param in teacher.parameters():
        param.requires_grad = False  # as build_student_teacher leaves it
    wrapped = wrap_teacher(teacher, None)
    with torch.no_grad():
        out = wrapped(torch.randn(2, 3, 4, 4))
    frozen = not any(param.requires_grad for param in teacher.parameters())
    with open(f"{sys.argv[1]}.{info.rank}", "w") as f:
        json.dump({"shape": list(out.shape), "frozen": frozen}, f)
main()
cleanup()
"""


@pytest.mark.slow
def test_a_frozen_batchnorm_teacher_can_be_wrapped_in_ddp(tmp_path, torchrun):
    # DDP refuses a module without trainable parameters; DINO's BN teacher (ResNet) must still be wrapped
    script, out = tmp_path / "wrap.py", tmp_path / "wrap"
    script.write_text(WRAP_TEACHER_SCRIPT)
    done = torchrun(script, out, timeout=120)
    assert done.returncode == 0, done.stderr
    for rank in range(2):
        assert json.loads(Path(f"{out}.{rank}").read_text()) == {"shape": [2, 4, 4, 4], "frozen": True}


def test_the_knn_subset_takes_an_equal_share_of_every_class():
    from simpool.train.dino.monitor import spread_over_classes

    targets = [0] * 6 + [1] * 2 + [2] * 10  # a class-sorted folder: 18 images
    # share 9 // 3 = 3: class 0 at 0, 2.5 -> 3 (round half to even), 5; class 1 has only 2; class 2 at 8, 12.5, 17
    assert spread_over_classes(targets, 9) == [0, 2, 5, 6, 7, 8, 12, 17]
    assert spread_over_classes(targets, 0) == list(range(18)) == spread_over_classes(targets, 18)
