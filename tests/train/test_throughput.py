"""The throughput benchmark (``benchmarks/train_throughput.py``): the engine's update against a bare timm step."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "train_throughput.py"
KEYS = {"ours", "bare", "ratio", "model", "pool", "batch", "img_size", "amp", "device"}


def load_benchmark():
    spec = importlib.util.spec_from_file_location("train_throughput", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rates_are_images_per_second_of_each_step(monkeypatch, tiny_vit_kwargs):
    # A fake clock: our update takes 1 s and the bare step 2 s, so with 2 images a step our rate is 2 images/s,
    # the bare one 1 image/s and their ratio 2, whatever the machine.
    benchmark = load_benchmark()
    clock = [0.0]
    monkeypatch.setattr(benchmark, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    run_update = benchmark.Engine.run_update

    def our_update(self, *args, **kwargs):
        clock[0] += 1.0
        return run_update(self, *args, **kwargs)

    def bare_loss(*args, **kwargs):
        clock[0] += 2.0
        return torch.nn.functional.cross_entropy(*args, **kwargs)

    monkeypatch.setattr(benchmark.Engine, "run_update", our_update)
    monkeypatch.setattr(benchmark, "F", SimpleNamespace(cross_entropy=bare_loss))
    result = benchmark.measure(
        "vit_tiny_patch16_224", batch=2, steps=3, rounds=2, device=torch.device("cpu"), **tiny_vit_kwargs
    )
    assert set(result) == KEYS
    assert (result["ours"], result["bare"], result["ratio"]) == pytest.approx((2.0, 1.0, 2.0))
    assert (result["model"], result["pool"], result["batch"], result["img_size"]) == (
        "vit_tiny_patch16_224",
        "simpool",
        2,
        32,
    )
    assert (result["amp"], result["device"]) == ("none", "cpu")


def test_throughput_of_a_cnn_does_not_pass_an_image_size():
    result = load_benchmark().measure("resnet10t", pool="simpool", batch=2, img_size=32, steps=1, rounds=1)
    assert set(result) == KEYS and result["img_size"] == 32
    assert all(math.isfinite(result[key]) and result[key] > 0 for key in ("ours", "bare", "ratio"))
