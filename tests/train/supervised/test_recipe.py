"""End-to-end supervised runs on a tiny ImageFolder: learning, exact resume after a stop and a SIGKILL, the best
score kept across a resume, DDP equality, the CLI's one-line refusals."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from simpool.cli import main
from simpool.models import create_model
from simpool.train.checkpointing import load_state
from simpool.train.config import load_config
from simpool.train.recipe import Loop
from simpool.train.run import RunFolder
from simpool.train.supervised.config import SupervisedConfig
from simpool.train.supervised.recipe import BestScore, SupervisedRecipe, train
from tests.train.conftest import overrides, run_cli_killed_at


def read_log(folder: Path) -> list[dict]:
    return RunFolder(folder).read_log()


def test_the_recipe_takes_its_loop_and_run_folder_from_the_config(tmp_path):
    config = load_config(
        SupervisedConfig,
        None,
        [
            f"train.output={tmp_path}",
            "train.amp=bf16",
            "train.accum_steps=2",
            "train.max_updates=9",
            "train.seed=3",
            "model.compile=true",
            "model.sync_bn=true",
            "model.name=resnet18",
            "model.pool=gap",
        ],
    )
    recipe = SupervisedRecipe(config)
    assert recipe.run_dir == tmp_path / "resnet18-gap"
    assert recipe.loop == Loop(amp="bf16", accum_steps=2, compile=True, sync_batchnorm=True, max_updates=9, seed=3)


def test_the_best_score_loads_its_own_state_and_an_older_float():
    best = BestScore()
    assert best.improve(3.0) and not best.improve(3.0) and not best.improve(2.0) and best.improve(4.5)
    restored = BestScore()
    restored.load_state_dict(best.state_dict())
    assert restored.score == 4.5
    restored.load_state_dict(7.25)  # a last.pt written before the best score was an object
    assert restored.score == 7.25


def test_two_epochs_lower_the_loss_and_fill_the_run_folder(tiny_data, tmp_path):
    config = load_config(
        SupervisedConfig,
        None,
        overrides(tiny_data, tmp_path / "runs", train__epochs=2, train__batch_size=8, optim__lr=3e-3),
    )
    result = train(config)
    folder = Path(result["run_dir"])
    rows = read_log(folder)
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    assert load_config(SupervisedConfig, folder / "config.yaml") == config  # the resolved config, reloadable
    for name in ("last", "best"):
        assert set(load_file(folder / f"{name}.safetensors")) == set(load_state(folder / "last.pt")["model"])
    state = load_state(folder / "last.pt")
    assert state["epoch"] == 2
    assert result["best_top1"] == max(float(row["val_top1"]) for row in rows) == state["best"]["score"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_weights(tiny_data, tmp_path):
    # Mixup (NumPy RNG), drop-path (torch RNG) and EMA all have to be restored for the weights to match.
    common = dict(
        train__epochs=2,
        train__batch_size=8,
        train__checkpoint_every=3,
        mixup__mixup=0.4,
        mixup__smoothing=0.1,
        ema__enabled="true",
        ema__decay=0.9,
        model__kwargs="{img_size: 32, patch_size: 8, embed_dim: 32, depth: 1, num_heads: 2, drop_path_rate: 0.2}",
    )
    train(load_config(SupervisedConfig, None, overrides(tiny_data, tmp_path / "straight", **common)))
    # 4 updates per epoch; the last state is written at update 3 (mid-epoch 0) and 4 (end of epoch 0),
    # then at 6 (mid-epoch 1); the process dies at update 7, losing one update of work.
    killed = run_cli_killed_at(7, ["train", *overrides(tiny_data, tmp_path / "killed", **common)])
    assert killed.returncode == -9, killed.stderr[-2000:]
    state = load_state(tmp_path / "killed" / "run" / "last.pt")
    assert (state["epoch"], state["update_in_epoch"], state["update"]) == (1, 2, 6)
    resumed = run_cli_killed_at(0, ["train", *overrides(tiny_data, tmp_path / "killed", **common)])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for name in ("last", "last_ema"):
        expected = load_file(tmp_path / "straight" / "run" / f"{name}.safetensors")
        actual = load_file(tmp_path / "killed" / "run" / f"{name}.safetensors")
        assert all(torch.equal(expected[key], actual[key]) for key in expected), name
    assert [row["epoch"] for row in read_log(tmp_path / "killed" / "run")] == ["0", "1"]  # one row per epoch


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tiny_data, tmp_path, torchrun):
    # One process accumulates 2 micro-batches of 4; two processes take one slice of 4 each: the same
    # global batch of 8 per update, so the same weights up to the order of float sums.
    common = dict(train__epochs=2, train__batch_size=8, train__eval_every=2)
    train(load_config(SupervisedConfig, None, overrides(tiny_data, tmp_path / "one", train__accum_steps=2, **common)))
    double = torchrun("-m", "simpool.cli", "train", *overrides(tiny_data, tmp_path / "two", **common))
    assert double.returncode == 0, double.stderr[-3000:]
    one = load_file(tmp_path / "one" / "run" / "last.safetensors")
    two = load_file(tmp_path / "two" / "run" / "last.safetensors")
    assert set(one) == set(two)
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5, msg=key)
    assert load_state(tmp_path / "two" / "run" / "last.pt")["update"] == 8
    config = load_config(SupervisedConfig, None, overrides(tiny_data, tmp_path / "x", **common))
    torch.manual_seed(config.train.seed)  # the initial weights, as train() builds them
    model = create_model(config.model.name, config.model.pool, num_classes=2, **config.model.kwargs)
    moved = [key for key, value in model.state_dict().items() if not torch.equal(value, one[key])]
    assert "head.weight" in moved and len(moved) > len(one) // 2  # the equality above is not of untrained weights


def test_corrupted_images_are_skipped_and_counted_in_the_log(tiny_data, tmp_path):
    from simpool.train.supervised.validate import validate_checkpoint

    (tiny_data / "train" / "class_0" / "000.png").write_bytes(b"garbage")  # replaces a good image
    (tiny_data / "val" / "class_1" / "zzz.jpg").write_bytes(b"\xff\xd8\xff truncated jpeg")
    config = load_config(
        SupervisedConfig, None, overrides(tiny_data, tmp_path / "runs", train__epochs=1, train__batch_size=32)
    )
    with pytest.warns(UserWarning, match="000.png"), pytest.warns(UserWarning, match="zzz.jpg"):
        result = train(config)
    # 32 training images in one global batch (1 unreadable) and 17 validation images (1 unreadable)
    assert result["skipped"] == 2
    with pytest.warns(UserWarning, match="zzz.jpg"):
        metrics = validate_checkpoint(Path(result["run_dir"]) / "last.safetensors", tiny_data, workers=0)
    # the run's top-1 is over the 16 readable validation images
    assert metrics["images"] == 16 and metrics["top1"] == pytest.approx(result["val_top1"])


def test_two_epochs_on_the_rendered_bench_lower_the_loss(tmp_path):
    config = load_config(
        SupervisedConfig,
        None,
        overrides(
            Path(""),
            tmp_path / "runs",
            data__dataset="bench",
            data__root="''",
            data__bench_images=64,
            train__epochs=2,
            train__batch_size=16,
            optim__lr=3e-3,
        ),
    )
    result = train(config)
    rows = read_log(Path(result["run_dir"]))
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    assert [row["val_top1"] != "" for row in rows] == [True, True]  # the bench's val split was evaluated


def test_stopping_mid_epoch_then_resuming_gives_the_uninterrupted_weights(tiny_data, tmp_path):
    # in-process twin of the SIGKILL test: 8 updates straight == 5 updates, stop, resume for 3 more
    common = dict(
        train__epochs=2,
        train__batch_size=8,
        mixup__mixup=0.4,
        mixup__smoothing=0.1,
        model__kwargs="{img_size: 32, patch_size: 8, embed_dim: 32, depth: 1, num_heads: 2, drop_path_rate: 0.2}",
    )
    straight = train(load_config(SupervisedConfig, None, overrides(tiny_data, tmp_path / "straight", **common)))
    stopped = train(
        load_config(SupervisedConfig, None, overrides(tiny_data, tmp_path / "cut", train__max_updates=5, **common))
    )
    state = load_state(tmp_path / "cut" / "run" / "last.pt")
    assert stopped["update"] == 5 and state["update_in_epoch"] == 1
    first_epoch = float(read_log(tmp_path / "cut" / "run")[0]["val_top1"])
    assert state["best"] == {"score": first_epoch}  # the best score so far is part of the saved state
    resumed = train(load_config(SupervisedConfig, None, overrides(tiny_data, tmp_path / "cut", **common)))
    expected = load_file(tmp_path / "straight" / "run" / "last.safetensors")
    actual = load_file(tmp_path / "cut" / "run" / "last.safetensors")
    assert all(torch.equal(expected[key], actual[key]) for key in expected)
    assert resumed["best_top1"] == straight["best_top1"]  # the best over both epochs, across the stop


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_channels_last_and_ema_train_with_finite_losses(tiny_data, tmp_path, amp):
    config = load_config(
        SupervisedConfig,
        None,
        overrides(
            tiny_data,
            tmp_path / "runs",
            train__epochs=1,
            train__batch_size=8,
            train__amp=amp,
            model__channels_last="true",
            ema__enabled="true",
            optim__clip_grad=1.0,
        ),
    )
    result = train(config)
    assert np.isfinite(result["train_loss"]) and np.isfinite(result["val_loss"])
    assert "ema_top1" in result and (Path(result["run_dir"]) / "last_ema.safetensors").is_file()
    if amp == "fp16":  # the gradient scaler's state is part of the training state
        assert "scaler" in load_state(Path(result["run_dir"]) / "last.pt")


def test_a_second_run_in_a_locked_folder_is_refused_in_one_line(tiny_data, tmp_path, capsys):
    args = overrides(tiny_data, tmp_path, train__epochs=1, train__batch_size=8)
    with RunFolder(tmp_path / "run").lock():  # as if a first run were still training there
        assert main(["train", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simpool train: error: ")
    assert f"pid {os.getpid()}" in err[0] and str(tmp_path / "run") in err[0]
    assert not (tmp_path / "run" / "log.csv").exists()  # nothing was written by the refused run
    assert main(["train", *args]) == 0 and not (tmp_path / "run" / ".lock").exists()  # released after


def test_resume_may_extend_epochs_only_and_follows_the_longer_schedule(tiny_data, tmp_path, capsys):
    common = dict(train__batch_size=8, sched__warmup_epochs=0, sched__min_lr=0.0)
    assert main(["train", *overrides(tiny_data, tmp_path / "a", train__epochs=1, **common)]) == 0
    changed = overrides(tiny_data, tmp_path / "a", train__epochs=2, optim__lr=0.5, **common)
    capsys.readouterr()
    assert main(["train", *changed]) == 2
    refusal = capsys.readouterr().err
    assert "optim.lr: 0.001 -> 0.5" in refusal and "--no-resume" in refusal and "train.epochs: 1" not in refusal
    after_one = load_file(tmp_path / "a" / "run" / "last.safetensors")
    assert main(["train", *overrides(tiny_data, tmp_path / "a", train__epochs=2, **common)]) == 0
    assert "extending train.epochs from 1 to 2" in capsys.readouterr().out
    assert [row["epoch"] for row in read_log(tmp_path / "a" / "run")] == ["0", "1"]
    # the second epoch follows a 2-epoch cosine (lr > 0 in it), not the finished 1-epoch one (min_lr 0 after it):
    # the weights moved
    after_two = load_file(tmp_path / "a" / "run" / "last.safetensors")
    assert not torch.equal(after_two["head.weight"], after_one["head.weight"])


def test_a_truncated_last_pt_is_one_line_naming_it(tiny_data, tmp_path, capsys):
    args = overrides(tiny_data, tmp_path, train__epochs=1, train__batch_size=8)
    assert main(["train", *args]) == 0
    last = tmp_path / "run" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    capsys.readouterr()
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(last) in err[0] and "--no-resume" in err[0]
    assert main(["train", *args, "train.epochs=1", "--no-resume"]) == 0


def test_a_bad_override_or_batch_split_is_one_line_and_trains_nothing(tiny_data, tmp_path, capsys):
    args = overrides(tiny_data, tmp_path, train__epochs=1)
    assert main(["train", *args, "optim.lrr=0.1"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("simpool train: error: unknown config key(s) optim.lrr") and "'lr'" in line
    assert main(["train", *args, "train.batch_size=7", "train.accum_steps=2"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == "simpool train: error: train.batch_size=7 is not divisible by world_size x accum_steps = 2"
    assert not (tmp_path / "run" / "last.pt").exists()
