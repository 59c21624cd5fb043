"""One ``--pool`` rule in every command that builds a model: ``auto``, the checkpoint's own pool when it has one,
else timm's ``default``; stated once, in the same help text everywhere."""

from __future__ import annotations

import argparse

import torch

from simpool.cli.common import POOL_AUTO, POOL_HELP, add_model, model_from_args, resolve_pool
from simpool.cli.main import walk
from simpool.models import create_model, pool_slot, save_checkpoint
from tests.conftest import TINY_VIT, TINY_VIT_ARGS

LISTS = {"simpool resources"}  # --pool there is the list of pools to compare, not the pool of one model


def test_every_command_has_the_same_pool_default_and_help():
    # before: default in probe, simpool in export and eval, auto in attention
    found = {
        prog: (action.default, action.help)
        for prog, parser in walk()
        for action in parser._actions
        if "--pool" in action.option_strings and prog not in LISTS
    }
    assert len(found) == 11  # export, attention, probe and the 8 eval protocols with a model
    assert set(found.values()) == {(POOL_AUTO, POOL_HELP)}, found


def test_auto_is_the_checkpoints_pool_else_timms_own():
    assert resolve_pool("auto", None) == "default"
    assert resolve_pool("auto", "model.safetensors") == "auto"  # load_model reads the pool from its names
    assert resolve_pool("simpool", None) == "simpool" and resolve_pool("default", "m.safetensors") == "default"


def test_without_pool_the_model_has_the_checkpoints_pool_or_timms_own(tmp_path):
    torch.manual_seed(0)
    for name, pool in (("s", "simpool"), ("d", "default")):
        model = create_model("vit_tiny_patch16_224", pool=pool, num_classes=2, **TINY_VIT)
        save_checkpoint(model, tmp_path / f"{name}.safetensors")
    parser = argparse.ArgumentParser()
    add_model(parser)
    for name, has_pool in (("s", True), ("d", False), (None, False)):
        argv = ["--model", "vit_tiny_patch16_224", "--model-kwargs", *TINY_VIT_ARGS]
        argv += [] if name is None else ["--checkpoint", str(tmp_path / f"{name}.safetensors")]
        model = model_from_args(parser.parse_args(argv), torch.device("cpu"))
        assert (pool_slot(model) is not None) == has_pool, name
