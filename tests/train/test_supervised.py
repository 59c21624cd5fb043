"""End-to-end supervised runs on a tiny ImageFolder: learning, exact resume after SIGKILL, DDP equality."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from simpool.models import create_model
from simpool.train.checkpointing import load_state
from simpool.train.config import load_config
from simpool.train.supervised.config import SupervisedConfig
from simpool.train.supervised.recipe import train

from .conftest import overrides

REPO = Path(__file__).parents[2]


def run_cli(args: list[str]) -> subprocess.CompletedProcess:
    """``simpool train ...`` in a fresh process, one CPU thread (the ``torchrun`` fixture launches several)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "simpool.cli", "train", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)


def test_two_epochs_lower_the_loss_and_fill_the_run_folder(tiny_data, tmp_path):
    config = load_config(
        SupervisedConfig,
        None,
        overrides(tiny_data, tmp_path / "runs", train__epochs=2, train__batch_size=8, optim__lr=3e-3),
    )
    result = train(config)
    folder = Path(result["run_dir"])
    rows = (folder / "log.csv").read_text().splitlines()
    header, first, second = rows[0].split(","), rows[1].split(","), rows[2].split(",")
    loss = header.index("train_loss")
    assert float(second[loss]) < float(first[loss])
    assert load_config(SupervisedConfig, folder / "config.yaml") == config  # the resolved config, reloadable
    for name in ("last", "best"):
        assert set(load_file(folder / f"{name}.safetensors")) == set(load_state(folder / "last.pt")["model"])
    assert load_state(folder / "last.pt")["epoch"] == 2


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
    killed = run_cli(overrides(tiny_data, tmp_path / "killed", train__kill_at_update=7, **common))
    assert killed.returncode == -9, killed.stderr[-2000:]
    state = load_state(tmp_path / "killed" / "run" / "last.pt")
    assert (state["epoch"], state["update_in_epoch"], state["update"]) == (1, 2, 6)
    resumed = run_cli(overrides(tiny_data, tmp_path / "killed", **common))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for name in ("last", "last_ema"):
        expected = load_file(tmp_path / "straight" / "run" / f"{name}.safetensors")
        actual = load_file(tmp_path / "killed" / "run" / f"{name}.safetensors")
        assert all(torch.equal(expected[key], actual[key]) for key in expected), name
    log = (tmp_path / "killed" / "run" / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["0", "1"]  # one row per epoch, none repeated


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
    (tiny_data / "train" / "class_0" / "000.png").write_bytes(b"garbage")  # replaces a good image
    (tiny_data / "val" / "class_1" / "zzz.jpg").write_bytes(b"\xff\xd8\xff truncated jpeg")
    config = load_config(
        SupervisedConfig, None, overrides(tiny_data, tmp_path / "runs", train__epochs=1, train__batch_size=32)
    )
    with pytest.warns(UserWarning, match="000.png"):
        result = train(config)
    # 32 training images in one global batch (1 unreadable) and 17 validation images (1 unreadable)
    assert result["skipped"] == 2
    assert result["val_top1"] >= 0.0


def test_validate_reports_the_accuracy_the_run_logged(tiny_data, tmp_path, capsys):
    from simpool.cli.validate import add_arguments, run
    from simpool.train.supervised.validate import validate_checkpoint

    config = load_config(
        SupervisedConfig, None, overrides(tiny_data, tmp_path / "runs", train__epochs=1, train__batch_size=8)
    )
    result = train(config)
    checkpoint = Path(result["run_dir"]) / "last.safetensors"
    metrics = validate_checkpoint(checkpoint, tiny_data, workers=0)
    # the same weights, images and eval transform as the run's own validation
    assert metrics["top1"] == pytest.approx(result["val_top1"]) and metrics["images"] == 16
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args(["--checkpoint", str(checkpoint), "--data", str(tiny_data), "--workers", "0"])) == 0
    assert "top1" in capsys.readouterr().out


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
    rows = (Path(result["run_dir"]) / "log.csv").read_text().splitlines()
    loss = rows[0].split(",").index("train_loss")
    assert float(rows[2].split(",")[loss]) < float(rows[1].split(",")[loss])
    assert result["val_top1"] >= 0.0  # the bench's val split was evaluated


def test_stopping_mid_epoch_then_resuming_gives_the_uninterrupted_weights(tiny_data, tmp_path):
    # in-process twin of the SIGKILL test: 8 updates straight == 5 updates, stop, resume for 3 more
    common = dict(
        train__epochs=2,
        train__batch_size=8,
        mixup__mixup=0.4,
        mixup__smoothing=0.1,
        model__kwargs="{img_size: 32, patch_size: 8, embed_dim: 32, depth: 1, num_heads: 2, drop_path_rate: 0.2}",
    )
    train(load_config(SupervisedConfig, None, overrides(tiny_data, tmp_path / "straight", **common)))
    stopped = train(
        load_config(SupervisedConfig, None, overrides(tiny_data, tmp_path / "cut", train__max_updates=5, **common))
    )
    assert stopped["update"] == 5 and load_state(tmp_path / "cut" / "run" / "last.pt")["update_in_epoch"] == 1
    train(load_config(SupervisedConfig, None, overrides(tiny_data, tmp_path / "cut", **common)))
    expected = load_file(tmp_path / "straight" / "run" / "last.safetensors")
    actual = load_file(tmp_path / "cut" / "run" / "last.safetensors")
    assert all(torch.equal(expected[key], actual[key]) for key in expected)


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
    from simpool.cli import main
    from simpool.train.run import RunFolder

    args = overrides(tiny_data, tmp_path, train__epochs=1, train__batch_size=8)
    with RunFolder(tmp_path / "run").lock():  # as if a first run were still training there
        assert main(["train", *args]) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and f"pid {os.getpid()}" in out[0] and str(tmp_path / "run") in out[0]
    assert not (tmp_path / "run" / "log.csv").exists()  # nothing was written by the refused run
    assert main(["train", *args]) is not None and not (tmp_path / "run" / ".lock").exists()  # released after


def test_resume_may_extend_epochs_only_and_follows_the_longer_schedule(tiny_data, tmp_path, capsys):
    from simpool.cli import main

    common = dict(train__batch_size=8, sched__warmup_epochs=0, sched__min_lr=0.0)
    assert main(["train", *overrides(tiny_data, tmp_path / "a", train__epochs=1, **common)]) is not None
    changed = overrides(tiny_data, tmp_path / "a", train__epochs=2, optim__lr=0.5, **common)
    capsys.readouterr()
    assert main(["train", *changed]) == 2
    refusal = capsys.readouterr().out
    assert "optim.lr: 0.001 -> 0.5" in refusal and "--no-resume" in refusal and "train.epochs: 1" not in refusal
    after_one = load_file(tmp_path / "a" / "run" / "last.safetensors")
    assert main(["train", *overrides(tiny_data, tmp_path / "a", train__epochs=2, **common)]) is not None
    assert "extending train.epochs from 1 to 2" in capsys.readouterr().out
    assert [row["epoch"] for row in RunFolder_rows(tmp_path / "a" / "run")] == ["0", "1"]
    # the second epoch follows a 2-epoch cosine (lr > 0 in it), not the finished 1-epoch one (min_lr 0 after it):
    # the weights moved
    after_two = load_file(tmp_path / "a" / "run" / "last.safetensors")
    assert not torch.equal(after_two["head.weight"], after_one["head.weight"])


def RunFolder_rows(path: Path) -> list[dict]:
    from simpool.train.run import RunFolder

    return RunFolder(path).read_log()


def test_a_truncated_last_pt_is_one_line_naming_it(tiny_data, tmp_path, capsys):
    from simpool.cli import main

    args = overrides(tiny_data, tmp_path, train__epochs=1, train__batch_size=8)
    assert main(["train", *args]) is not None
    last = tmp_path / "run" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    capsys.readouterr()
    assert main(["train", *args]) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and str(last) in out[0] and "--no-resume" in out[0]
    assert main(["train", *args, "train.epochs=1", "--no-resume"]) is not None


def test_validate_names_a_missing_checkpoint_before_looking_for_its_config(tmp_path, capsys):
    from simpool.cli.main import main

    missing = tmp_path / "runs" / "x" / "best.safetensors"
    assert main(["validate", "--checkpoint", str(missing), "--data", str(tmp_path)]) == 2
    out = capsys.readouterr()
    assert out.err.strip() == f"simpool validate: error: no checkpoint at {missing}" and not out.out


def test_validate_on_a_dino_run_says_it_needs_a_supervised_run(tmp_path, capsys):
    from simpool.cli.main import main
    from simpool.train.config import save_config
    from simpool.train.dino.config import DinoConfig

    # the config.yaml a DINO run writes into its folder
    recipe = load_config(DinoConfig, REPO / "configs" / "dino_bench_vit_tiny_simpool.yaml")
    save_config(recipe, tmp_path / "config.yaml")
    (tmp_path / "checkpoint.safetensors").write_bytes(b"")  # not read: the recipe is refused first
    argv = ["validate", "--checkpoint", str(tmp_path / "checkpoint.safetensors"), "--data", str(tmp_path)]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"simpool validate: error: {tmp_path / 'config.yaml'} is a DINO recipe: validate needs a supervised run "
        "(simpool train); evaluate a DINO backbone with simpool eval knn or simpool eval linear"
    )
