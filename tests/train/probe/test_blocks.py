"""Which blocks feed the heads (the last N or chosen indices; mean, concat, or AIM's avg), and the `_all` heads that
also see the CLS token."""

from __future__ import annotations

import pytest
import torch

from simpool.train.probe.config import head_pool
from simpool.train.probe.grid import FrozenBackbone, build_grid

from .conftest import tiny_backbone


@torch.no_grad()
def raw_blocks(model, images: torch.Tensor) -> list[torch.Tensor]:
    """Each block's output ``(B, 1 + N, C)`` before the final norm, run by hand."""
    tokens = model.norm_pre(model._pos_embed(model.patch_embed(images)))  # (B, 1 + N, C)
    outputs = []
    for block in model.blocks:
        tokens = block(tokens)
        outputs.append(tokens)
    return outputs


def test_block_indices_with_mean_concat_and_aims_avg(tiny_vit):
    model = tiny_vit(pool="default", depth=3)
    images = torch.randn(2, 3, 32, 32)
    raw = raw_blocks(model, images)
    normed = [model.norm(r) for r in raw]
    torch.testing.assert_close(FrozenBackbone(model, [0, 2], "mean")(images), (normed[0] + normed[2]) / 2)
    torch.testing.assert_close(FrozenBackbone(model, [0, -1], "concat")(images), torch.cat([normed[0], normed[2]], -1))
    # AIM's AverageLayers: the mean of the raw outputs, then the final norm once
    torch.testing.assert_close(FrozenBackbone(model, [1, 2], "avg")(images), model.norm((raw[1] + raw[2]) / 2))
    torch.testing.assert_close(FrozenBackbone(model, [-1])(images), FrozenBackbone(model, 1)(images))
    torch.testing.assert_close(FrozenBackbone(model, 3)(images), FrozenBackbone(model, [0, 1, 2])(images))


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        (4, "blocks 4: VisionTransformer has 3 blocks; valid: 1 to 3"),
        ([0, 3], "valid: -3 to 2"),
        ([1, 1], "give at least one, each once"),
    ],
)
def test_blocks_beyond_the_depth_are_one_line(blocks, message, tiny_vit):
    with pytest.raises(ValueError, match=message):
        FrozenBackbone(tiny_vit(pool="default", depth=3), blocks)


def test_an_all_head_also_sees_the_cls_token(tiny_vit):
    assert head_pool("simpool_all") == ("simpool", True) and head_pool("simpool") == ("simpool", False)
    grid = build_grid(tiny_backbone(tiny_vit), ["simpool", "simpool_all"], [1e-3], 3, 32)
    plain, every = grid.heads
    assert not plain.with_cls and every.with_cls and every.name == "simpool"
    tokens = torch.randn(2, 17, 32)  # (B, 1 + 16, C)
    assert plain.pool_input(tokens).shape == (2, 16, 32) and every.pool_input(tokens).shape == (2, 17, 32)
    every.load_state_dict(plain.state_dict())  # the same weights: only what the pool sees differs
    torch.testing.assert_close(every.pooled(tokens), every.pool(tokens).flatten(1))
    with pytest.raises(ValueError, match="unknown head 'linear_all'"):
        build_grid(tiny_backbone(tiny_vit), ["linear_all"], [1e-3], 3, 32)
