"""Every Table 10 row builds, pools, trains and differs from SimPool as the paper describes."""

from __future__ import annotations

import pytest
import torch

from simpool.pooling import create_pool
from simpool.pooling.ablations import TABLE_10


def _params(pool):
    return sum(p.numel() for p in pool.parameters())


@pytest.mark.parametrize("row", TABLE_10)
def test_row_pools_and_backpropagates(row):
    torch.manual_seed(0)
    pool = create_pool("framework", 8, **TABLE_10[row]).train()
    x = torch.randn(2, 8, 3, 5, requires_grad=True)
    pooled, attention = pool(x, return_attention=True)
    k = TABLE_10[row].get("num_vectors", 1)
    combine = TABLE_10[row].get("combine", "max")
    assert pooled.shape == ((2, k, 8) if k > 1 and combine == "max" else (2, 8))
    assert torch.isfinite(pooled).all()
    sums = attention.flatten(-2).sum(-1)
    torch.testing.assert_close(sums, torch.ones_like(sums))
    pooled.square().sum().backward()
    assert torch.isfinite(x.grad).all()


def test_parameter_counts_follow_the_table():
    dim = 8
    simpool = _params(create_pool("framework", dim, **TABLE_10["simpool"]))
    assert simpool == 2 * dim * dim + 2 * dim  # W_Q, W_K and the LayerNorm
    assert _params(create_pool("framework", dim, **TABLE_10["wq=wk"])) == dim * dim + 2 * dim  # 50% fewer in W
    assert _params(create_pool("framework", dim, **TABLE_10["layers-3"])) == simpool  # shared: no extra
    assert _params(create_pool("framework", dim, **TABLE_10["iter-3"])) == 3 * 2 * dim * dim + 2 * dim
    assert _params(create_pool("framework", dim, **TABLE_10["h=multihead-m4"])) == simpool
    assert _params(create_pool("framework", dim, **TABLE_10["k2-concat"])) == simpool + 2 * dim * dim + dim
    assert _params(create_pool("framework", dim, **TABLE_10["linear=-,ln=-"])) == 0  # GAP-like: no parameters


def test_no_linear_no_norm_is_attention_by_the_features_themselves():
    # linear="", norm="": q = GAP(X), K = V = X, a = softmax(X^T q / sqrt(d)), u = X a
    torch.manual_seed(0)
    x = torch.randn(2, 6, 4)
    pooled, attention = create_pool("framework", 4, **TABLE_10["linear=-,ln=-"])(x, return_attention=True)
    a = torch.softmax(x @ x.mean(1, keepdim=True).transpose(1, 2) / 2, dim=1)[..., 0]  # (B, N)
    torch.testing.assert_close(attention, a)
    torch.testing.assert_close(pooled, torch.einsum("bn,bnc->bc", a, x))


def test_iterations_reuse_the_pooled_vector_as_query():
    # with T = 2 the second query is W_Q of the first iteration's output: T = 2 differs from T = 1
    torch.manual_seed(0)
    one = create_pool("framework", 8, gamma=None)
    two = create_pool("framework", 8, gamma=None, iterations=2)
    two.load_state_dict(one.state_dict())
    x = torch.randn(2, 8, 4, 4)
    assert not torch.allclose(one(x), two(x))
