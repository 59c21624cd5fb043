"""``simpool probe`` end to end on a tiny bench export, and its one-line refusals."""

from __future__ import annotations

import json

import pytest

from simpool.cli.main import main
from tests.conftest import TINY_VIT_ARGS

TINY = ["--model", "vit_tiny_patch16_224", "--model-kwargs", *TINY_VIT_ARGS, "--img-size", "32"]


def test_probe_end_to_end_on_a_bench_export(bench_export, tmp_path, capsys):
    bench = bench_export("wsol", split="train", num_images=30)
    bench_export("wsol", split="test", num_images=8)
    out = tmp_path / "run"
    code = main(
        ["probe", *TINY, "--data", str(bench / "dataset"), "--test-split", "test", "--heads", "linear", "simpool",
         "--lr", "1e-3", "1e-2", "--epochs", "1", "--batch-size", "8", "--workers", "0", "--device", "cpu",
         "--cache", "--with-cls", "--out", str(out), "--no-progress", "--set", "probe.figure_images=2"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "selected on the held-out split" in printed and "MaxBoxAccV2" in printed
    result = json.loads((out / "results.json").read_text())
    assert [h["head"] for h in result["heads"]] == ["linear", "simpool"] and len(result["entries"]) == 4
    assert result["settings"]["cache"] and result["settings"]["with_cls"]
    assert all(0 <= h["MaxBoxAccV2"] <= 100 and 0 <= h["mask_mass"] <= 1 for h in result["heads"])
    assert (out / "probe.png").is_file() and (out / "attention.png").is_file() and (out / "tokens.f16").is_file()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--heads", "linear", "no_such_pool"], "unknown head 'no_such_pool'; valid heads: linear,"),
        (["--lr", "fast"], "--lr 'fast' is not a number"),
        (["--lr", "0"], "learning rates must be positive finite numbers"),
        (["--head-kwargs", "simpool"], "is not of the form HEAD.KEY=VALUE"),
    ],
)
def test_bad_head_or_lr_is_one_line_and_exit_2(options, message, tmp_path, capsys):
    code = main(["probe", *TINY, "--data", str(tmp_path), "--out", str(tmp_path / "run"), *options])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run").exists()  # refused before any work


def _probe_command(data, out, *extra):
    return [
        "probe", *TINY, "--data", str(data), "--test-split", "test", "--heads", "linear", "simpool",
        "--epochs", "2", "--batch-size", "8", "--workers", "0", "--device", "cpu", "--out", str(out),
        "--no-progress", "--set", "probe.figure_images=0", "train.num_threads=1", *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_result(bench_export, tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    bench = bench_export("wsol", split="train", num_images=30)
    bench_export("wsol", split="test", num_images=8)
    assert main(_probe_command(bench / "dataset", tmp_path / "straight")) == 0
    command = [sys.executable, "-m", "simpool.cli", *_probe_command(bench / "dataset", tmp_path / "killed")]
    killed = subprocess.run(
        [*command, "train.checkpoint_every=1", "train.kill_at_update=5"], cwd=REPO, capture_output=True, text=True
    )
    assert killed.returncode == -9, killed.stderr[-2000:]  # died mid-epoch 2 (3 updates per epoch)
    assert main(_probe_command(bench / "dataset", tmp_path / "killed")) == 0
    straight = json.loads((tmp_path / "straight" / "results.json").read_text())
    resumed = json.loads((tmp_path / "killed" / "results.json").read_text())
    assert resumed["entries"] == straight["entries"] and resumed["selected"] == straight["selected"]


@pytest.mark.slow
def test_two_gloo_processes_run_the_probe(bench_export, tmp_path, torchrun):
    bench = bench_export("wsol", split="train", num_images=30)
    bench_export("wsol", split="test", num_images=8)
    done = torchrun("-m", "simpool.cli", *_probe_command(bench / "dataset", tmp_path / "ddp", "--cache"))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "ddp" / "results.json").read_text())
    assert result["num_test"] == 8 and result["num_holdout"] == 3  # every image counted once over the processes
    assert len(result["entries"]) == 2 and result["finished"]
