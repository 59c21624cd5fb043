"""``simpool validate``: the accuracy a run logged, from its saved weights and config; one-line refusals."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from simpool.cli.main import main
from simpool.train.config import load_config, save_config
from simpool.train.supervised.config import SupervisedConfig
from simpool.train.supervised.recipe import train
from tests.conftest import REPO
from tests.train.conftest import overrides


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
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args(["--checkpoint", str(checkpoint), "--data", str(tiny_data), "--workers", "0"])) == 0
    assert "top1" in capsys.readouterr().out


def test_validate_names_a_missing_checkpoint_before_looking_for_its_config(tmp_path, capsys):
    missing = tmp_path / "runs" / "x" / "best.safetensors"
    assert main(["validate", "--checkpoint", str(missing), "--data", str(tmp_path)]) == 2
    out = capsys.readouterr()
    assert out.err.strip() == f"simpool validate: error: no checkpoint at {missing}" and not out.out


def test_validate_on_a_dino_run_says_it_needs_a_supervised_run(tmp_path, capsys):
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
