"""The throughput benchmark (``benchmarks/train_throughput.py``): the engine's update against a bare timm step."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "train_throughput.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("train_throughput", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_throughput_measures_both_steps():
    result = load_benchmark().measure(
        "vit_tiny_patch16_224",
        batch=2,
        img_size=32,
        steps=1,
        rounds=1,
        device=torch.device("cpu"),
        patch_size=8,
        embed_dim=32,
        depth=1,
        num_heads=2,
    )
    assert result["ours"] > 0 and result["bare"] > 0
    assert result["ratio"] == result["ours"] / result["bare"]


def test_throughput_of_a_cnn_does_not_pass_an_image_size():
    result = load_benchmark().measure("resnet10t", pool="simpool", batch=2, img_size=32, steps=1, rounds=1)
    assert result["ours"] > 0
