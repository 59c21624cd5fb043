"""``simpool probe`` end to end on a tiny bench export, its ``key=value`` overrides, its one-line refusals, and an
exact resume after a SIGKILL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from simpool.cli.main import main
from simpool.train.probe.report import attention_lines, baselines_table, heads_table, selection_line
from tests.conftest import TINY_VIT_ARGS
from tests.train.conftest import run_cli_killed_at
from tests.train.probe.conftest import baselines_by_hand, reported_scores, scores_by_hand

TINY = ["--model", "vit_tiny_patch16_224", "--model-kwargs", *TINY_VIT_ARGS, "--img-size", "32"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    """A wsol bench export: 30 training images (3 held out), 8 test images; ``dataset/`` is ``--data``."""
    from simpool.data.bench_export import export

    root = tmp_path_factory.mktemp("bench")
    export(root, "wsol", "original", split="train", num_images=30, progress=False)
    export(root, "wsol", "original", split="test", num_images=8, progress=False)
    return root / "dataset"


def test_probe_end_to_end_on_a_bench_export(bench, tmp_path, capsys):
    out = tmp_path / "run"
    # the override right after a list option (--lr) is still an override
    code = main(
        ["probe", *TINY, "--data", str(bench), "--test-split", "test", "--heads", "linear", "simpool", "--epochs", "1"]
        + ["--batch-size", "8", "--workers", "0", "--device", "cpu", "--cache", "--with-cls", "--out", str(out)]
        + ["--no-progress", "--lr", "1e-3", "1e-2", "probe.figure_images=2"]
    )
    printed = capsys.readouterr().out
    assert code == 0
    result = json.loads((out / "results.json").read_text())
    assert heads_table(result) in printed and selection_line(result) in printed
    assert baselines_table(result) in printed and "\n".join(attention_lines(result)) in printed
    assert list(result["baselines"]) == ["uniform", "centre", "box_prior", "mean_map/linear", "mean_map/simpool"]
    assert f"run folder: {out}" in printed
    assert [h["head"] for h in result["heads"]] == ["linear", "simpool"]
    entries = [(head, lr) for head in ("linear", "simpool") for lr in (1e-3, 1e-2)]
    assert [(e["head"], e["lr"]) for e in result["entries"]] == entries
    assert result["settings"]["cache"] and result["settings"]["with_cls"]
    assert (result["num_holdout"], result["num_test"], result["finished"]) == (3, 8, True)
    by_hand = scores_by_hand(out)
    for name, scores in reported_scores(result).items():
        assert scores == pytest.approx(by_hand[name], rel=1e-6), name
    assert (out / "probe.png").is_file() and (out / "attention.png").is_file() and (out / "tokens.f16").is_file()


def test_lists_of_weight_decays_head_options_and_test_splits(tmp_path, capsys):
    argv = ["probe", *TINY, "--data", str(tmp_path), "--heads", "linear", "ep", "--weight-decay", "0", "0.05"]
    argv += ["--head-kwargs", "ep.num_queries=8,16,32", "ep.d_out=1", "--test-split", "test", "in9", "--print-config"]
    assert main(argv) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["probe"]["weight_decays"] == [0.0, 0.05]
    assert config["probe"]["head_kwargs"] == {"ep": {"num_queries": [8, 16, 32], "d_out": 1}}
    assert config["data"]["val_split"] == "test" and config["probe"]["test_splits"] == ["in9"]
    for blocks, expected in ((["last2"], {"blocks": 2}), (["0", "-1"], {"block_indices": [0, -1]})):
        assert main(["probe", *TINY, "--data", str(tmp_path), "--blocks", *blocks, "--print-config"]) == 0
        config = yaml.safe_load(capsys.readouterr().out)["probe"]
        assert {key: config[key] for key in expected} == expected


def test_blocks_beyond_the_depth_and_bad_shots_are_one_line(bench, tmp_path, capsys):
    argv = ["probe", *TINY, "--data", str(bench), "--test-split", "test", "--device", "cpu", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "a"), "--blocks", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "blocks 3: VisionTransformer has 1 blocks; valid: 1 to 1" in err, err
    assert main([*argv, "--out", str(tmp_path / "b"), "--shots", "0"]) == 2
    assert "--shots '0' is not a positive integer" in capsys.readouterr().err


def test_overrides_come_after_the_options(tmp_path, capsys):
    argv = ["probe", *TINY, "--data", str(tmp_path), "--heads", "gap", "train.epochs=3", "--holdout", "0.2"]
    assert main([*argv, "probe.holdout=0.3", "data.crop_pct=1.0", "--print-config"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["probe"]["heads"] == ["gap"] and config["train"]["epochs"] == 3
    assert config["probe"]["holdout"] == 0.3 and config["data"]["crop_pct"] == 1.0  # over --holdout 0.2
    assert config["model"]["kwargs"] == {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2}
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--heads", "linear", "no_such_pool"], "unknown head 'no_such_pool'; valid heads: linear,"),
        (["--lr", "fast"], "--lr 'fast' is not a number"),
        (["--lr", "0"], "learning rates (probe.lrs, --lr) must be positive finite numbers"),
        (["--lr", "1e-3", "1e-3"], "learning rates (probe.lrs, --lr) [0.001, 0.001] name 0.001 twice"),
        (["--weight-decay", "0.05", "0.05"], "(probe.weight_decays, --weight-decay) [0.05, 0.05] name 0.05 twice"),
        (["--weight-decay", "-0.1"], "weight decays (probe.weight_decays, --weight-decay) must be non-negative"),
        (["--test-split", "test", "test"], "test splits (--test-split) ['test', 'test'] name 'test' twice"),
        (["--heads", "gap", "gap"], "a head is named twice in probe.heads (--heads) ['gap', 'gap']"),
        (["--shots", "2", "2"], "shots (probe.shots, --shots) must be positive integers, each once: [2, 2]"),
        (["--heads", "ep", "--head-kwargs", "ep.num_queries=8,8"], "head option ep.num_queries=[8, 8]: give each"),
        (["--head-kwargs", "simpool"], "is not of the form HEAD.KEY=VALUE"),
        (["probe.no_such_key=1"], "unknown config key(s) probe.no_such_key"),
        (["train.epochs=0"], "config key 'train.epochs' must be in [1, inf), got 0"),
    ],
)
def test_bad_head_lr_or_override_is_one_line_and_exit_2(options, message, tmp_path, capsys):
    code = main(["probe", *TINY, "--data", str(tmp_path), "--out", str(tmp_path / "run"), *options])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run").exists()  # refused before any work


def _probe_command(data, out, *extra):
    options = "--test-split test --heads linear simpool --epochs 2 --batch-size 8 --workers 0 --device cpu"
    overrides = ["probe.figure_images=0", "train.num_threads=1"]
    return [
        "probe",
        *TINY,
        "--data",
        str(data),
        *options.split(),
        "--out",
        str(out),
        "--no-progress",
        *overrides,
        *extra,
    ]


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_result(bench, tmp_path):
    assert main(_probe_command(bench, tmp_path / "straight")) == 0
    killed = run_cli_killed_at(5, _probe_command(bench, tmp_path / "killed", "train.checkpoint_every=1"))
    assert killed.returncode == -9, killed.stderr[-2000:]  # died mid-epoch 2 (3 updates per epoch)
    assert not (tmp_path / "killed" / "results.json").exists()
    assert main(_probe_command(bench, tmp_path / "killed")) == 0
    straight = json.loads((tmp_path / "straight" / "results.json").read_text())
    resumed = json.loads((tmp_path / "killed" / "results.json").read_text())
    assert resumed["entries"] == straight["entries"] and resumed["selected"] == straight["selected"]


@pytest.mark.slow
def test_two_gloo_processes_run_the_probe(bench, tmp_path, torchrun):
    done = torchrun("-m", "simpool.cli", *_probe_command(bench, tmp_path / "ddp", "--cache"))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "ddp" / "results.json").read_text())
    assert result["num_test"] == 8 and result["num_holdout"] == 3  # every image counted once over the processes
    assert len(result["entries"]) == 2 and result["finished"]
    # each process mapped its block of the boxed test images and scored its share: gathered, they are the scores
    # of the trained heads on every image, and the baselines', computed in one process
    by_hand = scores_by_hand(tmp_path / "ddp")
    for name, scores in reported_scores(result).items():
        assert scores == pytest.approx(by_hand[name], rel=1e-6), name
    baselines = baselines_by_hand(tmp_path / "ddp")
    assert list(result["baselines"]) == list(baselines)
    for name, scores in result["baselines"].items():
        assert scores == pytest.approx(baselines[name], rel=1e-6), name
    assert {t["name"] for t in result["test_sets"]} == {"test"}
    # the k-NN row: each process votes for its shard of the queries, the hits summed: a single process's row
    assert main(_probe_command(bench, tmp_path / "one", "--cache")) == 0
    alone = json.loads((tmp_path / "one" / "results.json").read_text())
    assert result["knn"] == alone["knn"] and result["knn"]["k"] == 20


def test_heads_help_names_every_alias_and_efficient_probing_head(capsys):
    from simpool.cli.main import main
    from simpool.pooling import list_aliases, list_pools
    from simpool.train.probe.config import valid_heads

    with pytest.raises(SystemExit):
        main(["probe", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for alias, target in list_aliases().items():
        assert f"{alias} (= {target})" in text and alias in valid_heads()
    for name in ("esimpool", "dinovit", "cait", "cbam"):
        assert name in text and name in list_pools()
