"""The model options every ``simpool eval`` protocol shares (``simpool.cli.common.add_model``): strict loading,
the number of classes read from the checkpoint, the same defaults in every protocol."""

import argparse

import pytest
import torch

from simpool.cli.common import add_model, add_runtime, model_from_args
from simpool.cli.eval import COMMANDS
from simpool.cli.main import walk
from simpool.evaluate.features import pre_logits
from simpool.models import save_checkpoint


def parse(argv):
    parser = argparse.ArgumentParser()
    add_model(parser)
    add_runtime(parser)
    return parser.parse_args([*argv, "--device", "cpu"])


def test_a_classifier_checkpoint_builds_its_classifier_and_the_same_features(tmp_path, tiny_vit, tiny_vit_args):
    torch.manual_seed(0)
    trained = tiny_vit(num_classes=4)
    save_checkpoint(trained, tmp_path / "w.safetensors")
    args = parse(["--model", "vit_tiny_patch16_224", "--model-kwargs", *tiny_vit_args])
    args.checkpoint = str(tmp_path / "w.safetensors")
    model = model_from_args(args)
    assert model.num_classes == 4  # read from the checkpoint's classifier
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(pre_logits(model, x), pre_logits(trained.eval(), x))
    # a feature checkpoint (no classifier) builds no classifier
    save_checkpoint(tiny_vit(num_classes=0), tmp_path / "f.safetensors")
    args.checkpoint = str(tmp_path / "f.safetensors")
    assert model_from_args(args).num_classes == 0
    # a checkpoint of another architecture is refused: under --pool auto (the default) as fitting no pool, under a
    # named pool naming the keys
    save_checkpoint({"unrelated": torch.zeros(1)}, tmp_path / "bad.safetensors")
    args.checkpoint = str(tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match="its parameter names fit none of the pools"):
        model_from_args(args)
    args.pool = "simpool"
    with pytest.raises(ValueError, match="unrelated"):
        model_from_args(args)


def test_every_protocol_with_a_model_has_the_same_num_classes_default():
    defaults = {
        prog: action.default
        for prog, parser in walk(COMMANDS, "simpool eval")
        for action in parser._actions
        if "--num-classes" in action.option_strings
    }
    assert len(defaults) == 8  # every protocol but finetune (its model comes from the recipe)
    assert set(defaults.values()) == {None}  # None: the checkpoint's
