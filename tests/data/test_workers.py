"""Loader workers default to the CPUs per local process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from simpool.data.config import DataConfig, default_workers
from simpool.train.dino.config import DinoDataConfig


@pytest.mark.parametrize(
    "cpus, local, workers", [(256, 8, 16), (224, 8, 16), (112, 8, 13), (2, 1, 1), (1, 1, 0), (16, 2, 7)]
)  # (224, 8): a DGX H100 node's 224 hardware threads, 8 GPUs: 27 capped at 16
def test_workers_are_the_cpus_per_local_process_less_one(monkeypatch, cpus, local, workers):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local))
    assert default_workers() == workers
    assert DataConfig().num_workers == workers == DinoDataConfig().num_workers


RECIPES = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))
IMAGENET_RECIPES = [p for p in RECIPES if not p.name.startswith(("bench_", "dino_bench_", "finetune_"))]


@pytest.mark.parametrize("recipe", IMAGENET_RECIPES, ids=lambda path: path.stem)
def test_the_imagenet_recipes_take_the_workers_of_the_node(monkeypatch, recipe):
    from simpool.train.config import load_config
    from simpool.train.dino.config import DinoConfig
    from simpool.train.supervised.config import SupervisedConfig

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(32)), raising=False)  # a 32-thread node
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    config = load_config(DinoConfig if recipe.name.startswith("dino_") else SupervisedConfig, recipe)
    assert config.data.num_workers == 3  # 32 // 8 - 1: no recipe's fixed number oversubscribes it
