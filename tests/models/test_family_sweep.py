"""The family sweep (``benchmarks/family_sweep.py``) on a sample of diverse timm families.

The benchmark runs every family of timm (``docs/families.md``); this test runs its checks on 12 of
them, shrunk where timm takes size arguments, to stay within about a minute on two CPU cores.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "family_sweep.py"
VIT = dict(embed_dim=32, depth=1, num_heads=2, img_size=64, patch_size=16)
SAMPLE = {
    "swin_tiny_patch4_window7_224": dict(img_size=64, embed_dim=16, depths=(1, 1), num_heads=(1, 1), window_size=4),
    "test_efficientnet": {},
    "mobilenetv3_small_050": {},
    "regnetx_002": {},
    "beit_base_patch16_224": VIT,
    "eva02_tiny_patch14_224": VIT,
    "levit_128s": dict(img_size=64),
    "densenet121": dict(growth_rate=8, block_config=(1, 1, 1, 1)),
    "test_maxvit": dict(img_size=64),
    "deit_tiny_distilled_patch16_224": VIT,
    "resnetv2_18": dict(layers=[1, 1, 1, 1], channels=(16, 32, 64, 128)),
    "vit_small_patch14_reg4_dinov2": VIT,  # 4 registers
}


def load_benchmark():
    spec = importlib.util.spec_from_file_location("family_sweep", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["simpool", "gem"])
@pytest.mark.parametrize("name", sorted(SAMPLE))
def test_family_sample(name, pool):
    sweep = load_benchmark()
    sweep.check(name, pool, SAMPLE[name], sweep.IMAGE_SIZE)  # raises on the first step that fails


def test_smallest_variant_prefers_small_names():
    sweep = load_benchmark()
    names = ["resnet50", "resnet18", "test_resnet", "resnet101"]
    assert sorted(names, key=sweep._name_rank)[0] == "test_resnet"
    assert sorted(["cait_s24_224", "cait_xxs24_224"], key=sweep._name_rank)[0] == "cait_xxs24_224"
