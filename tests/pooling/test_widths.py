"""Every registered pool, built with its defaults, runs in models of any width (issue 28).

ResNet-50's 2048 and EfficientNet-B0's 1280 channels were refused by ``aim`` and ``jepa`` (12 heads); RegNetX-200MF's
368 by ``clip`` (64 does not divide it) and ``ep`` (32 queries). Heads are now the reference's count where it divides
the width, else derived from it as timm's ``AttentionPool2d`` does, ``head_dim = 64``.
"""

from __future__ import annotations

import pytest
import torch

from simpool import create_model, replace_pool
from simpool.pooling import create_pool, list_pools
from simpool.pooling.base import divisor_near, heads_for

# timm models of the widths to cover, made small where the width allows (fewer blocks, 32 px)
FAMILIES = {
    "resnet50": (2048, dict(layers=(1, 1, 1, 1))),  # the paper's ResNet wiring
    "mobilenetv2_050": (1280, {}),  # EfficientNet-B0's width and timm module (efficientnet), the generic wiring
    "regnetx_002": (368, {}),  # 368 = 8 x 46: 64 does not divide it
    "vit_tiny_patch16_224": (192, dict(img_size=32, depth=1)),  # the paper's ViT wiring, tokens
}


WIDE = {"resnet50", "mobilenetv2_050"}  # 25 pools of 1280-2048 channels: ~10 s each on 2 busy cores


CASES = [pytest.param(name, marks=pytest.mark.slow) if name in WIDE else name for name in sorted(FAMILIES)]


@pytest.mark.parametrize("name", CASES)
def test_every_pool_runs_with_its_defaults_in_models_of_every_width(name):
    width, kwargs = FAMILIES[name]
    torch.manual_seed(0)
    model = create_model(name, pool="gap", num_classes=3, **kwargs).eval()
    assert model.num_features == width
    images = torch.randn(1, 3, 32, 32)
    failed = {}
    for pool in list_pools():
        try:
            replace_pool(model, pool).eval()
            with torch.no_grad():
                logits = model(images)
            assert logits.shape == (1, 3) and torch.isfinite(logits).all(), tuple(logits.shape)
        except Exception as error:  # collect them all: one failure names every pool that fails
            failed[pool] = f"{type(error).__name__}: {error}"
    assert failed == {}


@pytest.mark.parametrize(
    ("width", "heads", "clip_heads", "queries"),
    [
        (768, 12, 12, 32),  # ViT-B: the references' 12 heads and 32 queries
        (384, 12, 6, 32),  # ViT-S: still the references' 12 (of 32 channels); timm's AttentionPool2d derives 6 of 64
        (192, 12, 3, 32),
        (2048, 32, 32, 32),  # 12 does not divide: heads of 64 channels, as timm's AttentionPool2d
        (1280, 20, 20, 32),
        (368, 8, 8, 23),  # 64 does not divide either: heads of 46 channels, the divisor nearest 64
        (16, 1, 1, 16),
    ],
)
def test_heads_are_the_references_where_they_divide_the_width_else_64_channels_each(width, heads, clip_heads, queries):
    # aim, jepa and esimpool: the reference's 12 where 12 divides the width; clip derives its heads as timm does
    for name, expected in (("aim", heads), ("jepa", heads), ("esimpool", heads), ("clip", clip_heads)):
        pool = create_pool(name, width)
        num_heads = pool.cross_attention_block.xattn.num_heads if name == "jepa" else pool.num_heads
        assert num_heads == expected, name
    assert create_pool("ep", width).num_queries == queries  # 32, else the divisor of the width nearest 32


def test_divisor_near_and_explicit_heads():
    assert [divisor_near(n, 64) for n in (368, 2048, 16, 100)] == [46, 64, 16, 50]
    assert divisor_near(12, 5) == 4  # 4 and 6 are both 1 from 5: the smaller
    assert heads_for(1280) == 20 and heads_for(1280, 16) == 16 and heads_for(96, head_dim=32) == 3
    assert heads_for(384, reference=12) == 12 and heads_for(1280, reference=12) == 20
    with pytest.raises(ValueError, match="num_heads=12 must divide dim=2048"):
        heads_for(2048, 12)
    with pytest.raises(ValueError, match="num_heads=12 must divide dim=2048; or leave it unset: 12 heads, else heads"):
        create_pool("aim", 2048, num_heads=12)
    with pytest.raises(ValueError, match="num_queries=0 must be >= 1"):  # 0 is refused, not read as unset
        create_pool("ep", 768, num_queries=0)
