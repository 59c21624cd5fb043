"""End-to-end DINO runs on a tiny ImageFolder: learning, the logged schedules and k-NN, teacher export, exact
resume (after a stop and after a SIGKILL), the CLI, DDP and the recipes."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from simpool.evaluate.knn import evaluate_knn
from simpool.models import load_checkpoint, pool_slot
from simpool.train.checkpointing import load_state
from simpool.train.config import load_config
from simpool.train.dino.config import DinoConfig
from simpool.train.dino.recipe import build_student_teacher, train_dino
from tests.conftest import TINY_VIT_YAML as TINY
from tests.conftest import write_image_folder
from tests.train.conftest import run_cli_killed_at

REPO = Path(__file__).parents[3]
# 2 blocks (drop-path draws from torch's RNG, which a resume must restore), the monitor at the last epoch
RUN = {"model__kwargs": TINY.replace("depth: 1", "depth: 2"), "model__drop_path_rate": 0.5, "monitor__every": 2}
LOGGED = ("epoch", "update", "train_loss", "lr", "wd", "teacher_momentum", "teacher_temp", "knn_top1", "knn_top5")


def dino_overrides(data: Path, output: Path, **extra) -> list[str]:
    """A width-32 SimPool ViT, 2 global 32 px + 2 local 16 px crops, a width-64 head, one CPU thread."""
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
        "train.progress": False,
    }
    values.update({key.replace("__", "."): value for key, value in extra.items()})
    return [f"{key}={value}" for key, value in values.items()]


def dino_config(data: Path, output: Path, **extra) -> DinoConfig:
    return load_config(DinoConfig, None, dino_overrides(data, output, **extra))


def read_log(folder: Path) -> list[dict]:
    with open(folder / "log.csv", newline="") as file:
        return list(csv.DictReader(file))


def cosine(base: float, final: float, t: int, steps: int) -> float:
    """DINO's cosine value at update ``t`` of ``steps`` (no warm-up)."""
    return final + 0.5 * (base - final) * (1 + math.cos(math.pi * t / steps))


@pytest.fixture(scope="module")
def dino_data(tmp_path_factory) -> Path:
    """``{train,val}``: 2 classes, 16 training images (4 updates of 8 per epoch) and 8 validation images each."""
    root = tmp_path_factory.mktemp("dino") / "data"
    write_image_folder(root / "train", per_class=16, seed=0)
    write_image_folder(root / "val", per_class=8, seed=1)
    return root


@pytest.fixture(scope="module")
def straight(dino_data, tmp_path_factory) -> Path:
    """The run folder of an uninterrupted 2-epoch run of :data:`RUN`, which the resumed runs must reproduce."""
    result = train_dino(dino_config(dino_data, tmp_path_factory.mktemp("straight"), **RUN))
    return Path(result["run_dir"])


def test_two_epochs_lower_the_loss_log_their_schedules_and_export_a_loadable_teacher(dino_data, straight, tiny_vit):
    rows = read_log(straight)
    assert [(row["epoch"], row["update"]) for row in rows] == [("0", "4"), ("1", "8")]
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    # the schedules' values at the epoch's last update (3, then 7, of 8): learning rate 6.25e-3 -> 1e-6,
    # weight decay 0.04 -> 0.4, teacher momentum 0.996 -> 1; the teacher temperature stays 0.04 (no warm-up)
    for row, last in zip(rows, (3, 7), strict=True):
        assert float(row["lr"]) == pytest.approx(cosine(6.25e-3, 1e-6, last, 8), rel=1e-12)
        assert float(row["wd"]) == pytest.approx(cosine(0.04, 0.4, last, 8), rel=1e-12)
        assert float(row["teacher_momentum"]) == pytest.approx(cosine(0.996, 1.0, last, 8), rel=1e-12)
        assert float(row["teacher_temp"]) == pytest.approx(0.04)
    # the teacher backbone loads strictly into a fresh create_model(..., num_classes=0) for evaluation
    model = tiny_vit(depth=2, pool_kwargs={"gamma": 1.25}, num_classes=0)
    load_checkpoint(model, straight / "teacher.safetensors")
    # the monitor (every 2 epochs: the last only) is the k-NN of `simpool eval knn` on that teacher: the train
    # split as memory, the val split queried, k = 20, T = 0.07, resized to 32 * 256 / 224 ~ 37 then cropped to 32
    knn = evaluate_knn(model.eval(), dino_data, ks=(20,), resize=37, img_size=32, progress=False)[20]
    assert rows[0]["knn_top1"] == "" and float(rows[1]["knn_top1"]) == knn["top1"]
    assert float(rows[1]["knn_top5"]) == knn["top5"]
    state = load_state(straight / "last.pt")
    assert set(state) >= {"student", "teacher", "dino_loss", "optimizer"}
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


def assert_same_run(expected: Path, actual: Path) -> None:
    """The same teacher, student and centre bit for bit, and the same log rows (but the timings)."""
    teacher, resumed_teacher = load_file(expected / "teacher.safetensors"), load_file(actual / "teacher.safetensors")
    assert set(teacher) == set(resumed_teacher)
    assert all(torch.equal(teacher[key], resumed_teacher[key]) for key in teacher)
    state, resumed = load_state(expected / "last.pt"), load_state(actual / "last.pt")
    assert torch.equal(state["dino_loss"]["center"], resumed["dino_loss"]["center"])
    assert all(torch.equal(v, resumed["student"][k]) for k, v in state["student"].items())
    rows = [[row[key] for key in LOGGED] for row in read_log(expected)]
    assert [[row[key] for key in LOGGED] for row in read_log(actual)] == rows


def test_stop_mid_epoch_then_resume_gives_the_uninterrupted_run(dino_data, straight, tmp_path):
    # 4 updates per epoch; the interrupted run stops after update 3 and saves (epoch 0, update 3);
    # drop-path (torch RNG), the augmentations, the centre and AdamW's moments all have to be restored.
    train_dino(dino_config(dino_data, tmp_path, train__max_updates=3, **RUN))
    state = load_state(tmp_path / "run" / "last.pt")
    assert (state["epoch"], state["update_in_epoch"], state["update"]) == (0, 3, 3)
    # epoch 0 keeps the head's last layer frozen (its gradients dropped before every step): the student's is
    # still the initial one, and so the teacher's (an EMA of equal weights); the backbones moved apart
    last_layer = [key for key in state["student"] if "last_layer" in key]
    assert last_layer and all(torch.equal(state["student"][k], state["teacher"][k]) for k in last_layer)
    assert any(not torch.equal(state["student"][k], state["teacher"][k]) for k in state["student"])
    train_dino(dino_config(dino_data, tmp_path, **RUN))
    assert_same_run(straight, tmp_path / "run")


@pytest.mark.slow
def test_sigkill_then_resume_through_the_cli(dino_data, straight, tmp_path):
    command = ["train-dino", *dino_overrides(dino_data, tmp_path, train__checkpoint_every=2, **RUN)]
    killed = run_cli_killed_at(7, command)
    assert killed.returncode == -9, killed.stderr[-2000:]
    state = load_state(tmp_path / "run" / "last.pt")
    assert (state["epoch"], state["update_in_epoch"], state["update"]) == (1, 2, 6)
    resumed = run_cli_killed_at(0, command)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"teacher backbone: {tmp_path / 'run'}/teacher.safetensors" in resumed.stdout
    assert_same_run(straight, tmp_path / "run")


def test_pair_root_trains_on_views_of_two_renderings_and_refuses_what_it_cannot_pair(dino_data, tmp_path, capsys):
    from simpool.cli import main
    from simpool.data.paired import PairedViews
    from simpool.train.dino.recipe import training_set

    other = tmp_path / "other"
    write_image_folder(other / "train", per_class=16, seed=7)  # the same names, other pixels
    config = dino_config(dino_data, tmp_path, data__pair_root=str(other), **{**RUN, "train__epochs": 1})
    data = training_set(config, lambda pair: pair)
    assert isinstance(data, PairedViews) and len(data) == 32
    first, second = data[(0, 5)][0]
    assert first.tobytes() != second.tobytes()  # image 5 of each folder
    (row,) = read_log(Path(train_dino(config)["run_dir"]))  # one epoch: 4 updates of 8 pairs
    assert int(row["update"]) == 4 and math.isfinite(float(row["train_loss"]))
    for extra, message in (
        ({"data__pair_root": str(tmp_path / "none")}, f"no folder at {tmp_path / 'none' / 'train'}"),
        ({"data__pair_root": str(other), "data__fraction": 0.5}, "leave data.fraction at 1"),
    ):
        overrides = dino_overrides(dino_data, tmp_path / "refused", **extra, **RUN)
        assert main(["train-dino", *overrides]) == 2
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("recipe", sorted(p.name for p in (REPO / "configs").glob("dino_*.yaml")))
def test_every_recipe_resolves(recipe):
    config = load_config(DinoConfig, REPO / "configs" / recipe)
    assert config.data.local_crops_number == 6
    assert config.data.global_size > config.data.local_size


def test_cli_print_config_and_unknown_key(capsys):
    from simpool.cli import main

    recipe = str(REPO / "configs" / "dino_resnet50_simpool.yaml")
    assert main(["train-dino", "--config", recipe, "--print-config", "optim.lr=0.1"]) == 0
    printed = capsys.readouterr().out
    assert "opt: lars" in printed and "lr: 0.1" in printed
    assert main(["train-dino", "optim.lrr=0.1"]) == 2
    assert "simpool train-dino: error: unknown config key(s) optim.lrr" in capsys.readouterr().err


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(dino_data, tmp_path, torchrun):
    # The same global batch of 8 per update, split 4 + 4 over two processes: gradients are averaged by DDP
    # and the teacher's center by an all-reduce, so the teachers agree up to the order of float sums.
    # No drop path: its random stream differs per process.
    extra = dict(model__drop_path_rate=0.0, train__epochs=1)
    one = train_dino(dino_config(dino_data, tmp_path / "one", **extra))
    command = ["-m", "simpool.cli", "train-dino", *dino_overrides(dino_data, tmp_path / "two", **extra)]
    two = torchrun(*command, timeout=300)
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
