"""The common contract of every registered pool, run over the registry.

Every pool takes a map ``(B, C, H, W)`` or tokens ``(B, N, C)`` (the number of dimensions decides) and returns
``(B, out_features)``, or ``(B, k, out_features)`` with ``num_vectors = k`` vectors; with ``return_attention``
also its attention, ``(B, H, W)`` or ``(B, N)`` with a dimension for heads or vectors after ``B`` when it has
several, non-negative and summing to 1 (pools without spatial attention give their implied weights).
Gradients reach the input and every parameter; eval mode is deterministic.
"""

from __future__ import annotations

import pytest
import torch

from simpool.pooling import create_pool, list_pools
from tests.pooling.pool_kwargs import tiny_kwargs

DIM = 16  # divisible by the 4 heads of vit/cait
SHAPES = {
    "map 3x5": (2, DIM, 3, 5),
    "map 1x1": (2, DIM, 1, 1),
    "map batch 1": (1, DIM, 4, 4),
    "tokens": (2, 7, DIM),
    "tokens batch 1": (1, 9, DIM),
}


def _expected(pool, shape):
    B = shape[0]
    k = getattr(pool, "num_vectors", 1)
    pooled = (B, pool.out_features) if k == 1 else (B, k, pool.out_features)
    grid = shape[2:] if len(shape) == 4 else (shape[1],)
    return pooled, grid


def test_registry_names_every_pool_of_table_1():
    expected = {"gap", "max", "gap_max", "gem", "lse", "how", "otk", "kmeans", "slot", "se", "cbam", "ge"}
    assert expected | {"vit", "cait", "simpool"} <= set(list_pools())


def test_registry_names_every_probing_head():
    # the attentive-probing heads compared by efficient-probing (Psomas et al., ICLR 2026)
    assert {"ep", "map", "clip", "abmilp", "coca", "aim", "jepa", "dolg", "cae"} <= set(list_pools())


def test_unknown_pool_lists_valid_names():
    with pytest.raises(ValueError, match="valid pools: .*simpool"):
        create_pool("nope", DIM)


@pytest.mark.parametrize("name", list_pools())
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_shapes_attention_and_gradients(name, shape):
    torch.manual_seed(0)
    pool = create_pool(name, DIM, **tiny_kwargs(name)).train()
    x = torch.randn(shape, requires_grad=True)
    pooled, attention = pool(x, return_attention=True)
    expected_pooled, grid = _expected(pool, shape)
    assert pooled.shape == expected_pooled
    assert torch.isfinite(pooled).all()
    # attention: (B, [M,] *grid), M heads or vectors when there are several; non-negative, summing to 1
    B = shape[0]
    assert attention.shape[0] == B and attention.shape[-len(grid) :] == tuple(grid)
    assert attention.ndim in (1 + len(grid), 2 + len(grid))
    assert (attention >= 0).all()
    sums = attention.flatten(-len(grid)).sum(-1)
    torch.testing.assert_close(sums, torch.ones_like(sums), atol=1e-5, rtol=0)
    # the output without attention is the same tensor (kmeans and slot draw anew in training mode)
    if name not in ("kmeans", "slot"):
        torch.testing.assert_close(pool(x), pooled)
    # gradients reach the input and every parameter
    pooled.float().square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for pname, param in pool.named_parameters():
        assert param.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(param.grad).all(), f"{name}: non-finite gradient for {pname}"


@pytest.mark.parametrize("name", list_pools())
def test_eval_is_deterministic(name):
    torch.manual_seed(0)
    pool = create_pool(name, DIM, **tiny_kwargs(name)).eval()
    x = torch.randn(2, DIM, 4, 4)
    with torch.no_grad():
        first, second = pool(x), pool(x)
    torch.testing.assert_close(first, second, atol=0, rtol=0)


@pytest.mark.parametrize("name", list_pools())
def test_map_and_tokens_agree(name):
    # A (B, C, H, W) map and its (B, H*W, C) tokens are the same features. Pools that convolve
    # over locations lay a square number of tokens on the square grid, so a 4x4 map matches.
    torch.manual_seed(0)
    pool = create_pool(name, DIM, **tiny_kwargs(name)).eval()
    fmap = torch.randn(2, DIM, 4, 4)
    tokens = fmap.flatten(2).transpose(1, 2)  # (B, N, C)
    with torch.no_grad():
        torch.testing.assert_close(pool(fmap), pool(tokens), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", list_pools())
def test_declares_out_features_and_rejects_bad_rank(name):
    pool = create_pool(name, DIM, **tiny_kwargs(name))
    assert pool.out_features == DIM
    with pytest.raises(ValueError):
        pool(torch.randn(DIM))
