"""Typed configs: recipes, overrides, errors on unknown keys and wrong types, the saved resolved config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from simpool.cli import main
from simpool.train.config import (
    check_bounds,
    check_resume_config,
    config_changes,
    load_config,
    parse_overrides,
    save_config,
    to_dict,
)
from simpool.train.dino.config import DinoConfig
from simpool.train.supervised.config import SupervisedConfig

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))
RECIPES = [path for path in CONFIGS if not path.name.startswith("dino_")]


def test_overrides_nest_and_read_values_as_yaml():
    assert parse_overrides(["optim.lr=0.1", "model.pool=gap", "ema.enabled=true", "model.pool_kwargs={gamma: 2}"]) == {
        "optim": {"lr": 0.1},
        "model": {"pool": "gap", "pool_kwargs": {"gamma": 2}},
        "ema": {"enabled": True},
    }


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=0.1", "optim.lrr"),  # a typo is an error naming the key
        ("nosection.x=1", "nosection"),
        ("train.epochs=ten", "train.epochs"),  # an int field refuses a string
        ("train.epochs=1.5", "train.epochs"),
        ("ema.enabled=3", "ema.enabled"),
        ("optim=0.1", "optim"),  # a section needs a mapping
        ("optim.lr", "key=value"),
    ],
)
def test_bad_overrides_raise_naming_the_key(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(SupervisedConfig, None, [override])


def test_yaml_1_1_exponent_strings_become_floats_and_null_is_none():
    # PyYAML reads `1e-3` (no dot) as a string; a float field converts it.
    config = load_config(SupervisedConfig, None, ["optim.lr=1e-3", "optim.clip_grad=null", "data.scale=[0.5, 1]"])
    assert config.optim.lr == 0.001 and config.optim.clip_grad is None and config.data.scale == (0.5, 1.0)


def test_base_recipe_is_merged_then_overrides_win(tmp_path):
    (tmp_path / "parent.yaml").write_text("optim: {lr: 0.4, opt: sgd}\nmodel: {name: resnet50, pool: default}\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\nmodel: {pool: simpool}\n")
    config = load_config(SupervisedConfig, tmp_path / "child.yaml", ["optim.lr=0.2"])
    assert (config.model.name, config.model.pool, config.optim.opt, config.optim.lr) == (
        "resnet50",
        "simpool",
        "sgd",
        0.2,
    )


def test_saved_config_reloads_equal(tmp_path):
    config = load_config(
        SupervisedConfig, None, ["optim.lr=0.3", "model.pool_kwargs={gamma: 1.25}", "data.scale=[0.2, 1]"]
    )
    save_config(config, tmp_path / "config.yaml")
    assert load_config(SupervisedConfig, tmp_path / "config.yaml") == config


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: path.stem)
def test_every_recipe_loads_and_simpool_recipes_use_the_papers_gamma(path):
    config = load_config(SupervisedConfig, path)
    if config.model.pool == "simpool":
        # paper: gamma 2 for CNNs, 1.25 for transformers
        expected = 1.25 if config.model.name.startswith("vit") else 2.0
        assert config.model.pool_kwargs["gamma"] == expected
    assert config.train.batch_size % config.train.accum_steps == 0


def test_paper_hyper_parameters_of_appendix_c2():
    def get(name):
        return load_config(SupervisedConfig, Path(__file__).parents[2] / "configs" / name)

    resnet50, convnext, vit = (
        get("resnet50_simpool.yaml"),
        get("convnext_small_simpool.yaml"),
        get("vit_small_simpool.yaml"),
    )
    assert (resnet50.optim.opt, resnet50.optim.lr, resnet50.train.batch_size) == ("sgd", 0.4, 1024)
    # official command: --aug-splits 3 --resplit --split-bn --jsd --dist-bn reduce
    data = resnet50.data
    assert (data.aug_splits, data.resplit, data.jsd, resnet50.model.split_bn) == (3, True, True, True)
    assert resnet50.train.dist_bn == "reduce"
    assert (convnext.optim.opt, convnext.optim.lr, convnext.train.batch_size, convnext.train.accum_steps) == (
        "adamw",
        0.004,
        4096,
        4,
    )
    assert (vit.optim.opt, vit.optim.lr, vit.train.batch_size) == ("adamw", 5e-4, 592)
    assert get("resnet18_in20_gap.yaml").data.fraction == 0.2


def test_cli_reports_an_unknown_key_and_prints_a_resolved_config(capsys):
    assert main(["train", "--config", str(RECIPES[0]), "optim.typo=1"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("simpool train: error: unknown config key(s) optim.typo; valid keys under 'optim.'")
    assert main(["train", "--config", str(RECIPES[0]), "optim.lr=0.123", "--print-config"]) == 0
    assert "lr: 0.123" in capsys.readouterr().out


def test_config_changes_lists_dotted_keys_that_differ():
    saved = {
        "optim": {"lr": 0.1, "betas": [0.9, 0.999]},
        "train": {"epochs": 1, "resume": True},
        "model": {"pool": "a"},
    }
    new = {"optim": {"lr": 0.5, "betas": (0.9, 0.999)}, "train": {"epochs": 1, "resume": False}, "model": {}}
    # a tuple equals the list YAML reads back; a key missing on one side counts as changed
    assert config_changes(saved, new) == ["model.pool", "optim.lr", "train.resume"]
    assert config_changes(saved, new, ignored=("train.resume", "model")) == ["optim.lr"]


def test_resume_may_extend_epochs_and_says_so():
    saved = to_dict(load_config(SupervisedConfig, None, ["train.epochs=1"]))
    new = to_dict(load_config(SupervisedConfig, None, ["train.epochs=2", "train.max_updates=5", "data.num_workers=0"]))
    assert check_resume_config(saved, new) == "extending train.epochs from 1 to 2"
    assert check_resume_config(saved, saved) is None


def test_resume_refuses_other_changes_listing_them(tmp_path):
    config = load_config(SupervisedConfig, None, ["train.epochs=1"])
    save_config(config, tmp_path / "config.yaml")
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())  # what RunFolder.read_config gives
    new = to_dict(load_config(SupervisedConfig, None, ["train.epochs=2", "optim.lr=0.5", "train.batch_size=32"]))
    with pytest.raises(ValueError, match="optim.lr: 0.0005 -> 0.5; train.batch_size: 256 -> 32") as error:
        check_resume_config(saved, new)
    assert "--no-resume" in str(error.value) and "\n" not in str(error.value)
    assert "only train.epochs may change on resume" in str(error.value)
    assert str(error.value).endswith("start over with --no-resume (train.resume=false)")
    # a flat config (the demo's) has neither train.epochs nor train.resume: the message names neither
    with pytest.raises(ValueError) as flat:
        check_resume_config({"lr": 0.001, "seed": 1}, {"lr": 0.003, "seed": 1})
    assert str(flat.value) == (
        "the config differs from the saved config.yaml (lr: 0.001 -> 0.003) and no setting may change on resume: "
        "undo the change, or start over with --no-resume"
    )


@pytest.mark.parametrize(
    ("cls", "override", "message"),
    [
        # before: timm's AssertionError (epochs=0) and a ZeroDivisionError (batch_size=0) long after loading
        (SupervisedConfig, "train.epochs=0", r"'train\.epochs' must be in \[1, inf\), got 0"),
        (SupervisedConfig, "train.batch_size=0", r"'train\.batch_size' must be in \[1, inf\), got 0"),
        (SupervisedConfig, "train.accum_steps=0", r"'train\.accum_steps' must be in \[1, inf\), got 0"),
        (SupervisedConfig, "data.num_workers=-1", r"'data\.num_workers' must be in \[0, inf\), got -1"),
        (SupervisedConfig, "data.fraction=0", r"'data\.fraction' must be in \(0, 1\], got 0\.0"),
        (SupervisedConfig, "mixup.smoothing=1", r"'mixup\.smoothing' must be in \[0, 1\), got 1\.0"),
        (SupervisedConfig, "ema.decay=1.5", r"'ema\.decay' must be in \[0, 1\], got 1\.5"),
        (SupervisedConfig, "optim.lr=.nan", r"'optim\.lr' must be in \[0, inf\), got nan"),
        (DinoConfig, "train.epochs=0", r"'train\.epochs' must be in \[1, inf\), got 0"),
        (DinoConfig, "train.batch_size=0", r"'train\.batch_size' must be in \[1, inf\), got 0"),
        (DinoConfig, "data.local_crops_number=-2", r"'data\.local_crops_number' must be in \[0, inf\)"),
        (DinoConfig, "loss.teacher_temp=0", r"'loss\.teacher_temp' must be in \(0, inf\), got 0\.0"),
        (DinoConfig, "monitor.k=0", r"'monitor\.k' must be in \[1, inf\), got 0"),
    ],
)
def test_a_count_out_of_range_names_the_key_and_the_range_when_loaded(cls, override, message):
    with pytest.raises(ValueError, match=message):
        load_config(cls, None, [override])


def test_bounds_take_their_edges_and_none():
    config = load_config(
        SupervisedConfig,
        None,
        ["train.epochs=1", "train.batch_size=1", "data.num_workers=0", "data.fraction=1", "optim.clip_grad=null"],
    )
    assert (config.train.epochs, config.data.fraction, config.optim.clip_grad) == (1, 1.0, None)


@pytest.mark.parametrize("cls", [SupervisedConfig, DinoConfig])
def test_every_bound_is_an_interval_of_a_field_and_the_defaults_are_inside(cls):
    def sections(config):
        yield config
        for field in dataclasses.fields(config):
            if dataclasses.is_dataclass(getattr(config, field.name)):
                yield from sections(getattr(config, field.name))

    for section in sections(cls()):
        names = {field.name for field in dataclasses.fields(section)}
        assert set(getattr(section, "BOUNDS", {})) <= names, type(section).__name__
        check_bounds(section)  # a malformed interval is a TypeError; a default outside is a ValueError


def test_the_cli_prints_one_line_for_a_zero_count(capsys):
    assert main(["train", "--config", str(RECIPES[0]), "train.epochs=0", "--print-config"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "simpool train: error: config key 'train.epochs' must be in [1, inf), got 0\n"
