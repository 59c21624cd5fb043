"""Identities from the paper (Appendix B) and parity with independent references (timm, plain formulas)."""

from __future__ import annotations

import math

import pytest
import torch
from timm.layers import LsePlus2d, SEModule

from simpool.pooling import create_pool, gap, gem, how, kmeans, lse, sinkhorn
from simpool.pooling.transformer import class_attention


def _nonnegative(*shape, dtype=torch.float64):
    torch.manual_seed(0)
    return torch.rand(*shape, dtype=dtype) * 0.9 + 0.05  # in [0.05, 0.95]


def test_gem_with_exponent_one_is_gap():
    x = _nonnegative(2, 6, 3, 5)
    torch.testing.assert_close(gem(x, 1.0), gap(x))  # (B6) with gamma = 1 is (B2)


def test_gem_with_large_exponent_approaches_max():
    # (B3)-(B5): (mean x^p)^(1/p) = max * (share of maxima)^(1/p) -> max as p grows
    x = _nonnegative(2, 6, 3, 5)
    maximum = x.amax(dim=(2, 3))
    assert (gem(x, 1000.0) - maximum).abs().max() < maximum.max() * (1 - 15 ** (-1 / 1000)) + 1e-12
    assert (gem(x, 10.0) - maximum).abs().max() > (gem(x, 1000.0) - maximum).abs().max()


def test_lse_approaches_gap_and_max():
    x = _nonnegative(2, 6, 3, 5)
    # (B7): small r -> mean (error r * var / 2), large r -> max (error log(p) / r)
    torch.testing.assert_close(lse(x, 1e-6), gap(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(lse(x, 1e5), x.amax(dim=(2, 3)), atol=math.log(15) / 1e5 + 1e-9, rtol=0)


def test_lse_matches_timm_lseplus():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 4, 3)
    ours = create_pool("lse", 8, r=10.0, learnable=False)
    torch.testing.assert_close(ours(x), LsePlus2d(r=10.0, r_learnable=False)(x), atol=1e-5, rtol=1e-5)


def test_kmeans_with_one_centroid_is_gap():
    torch.manual_seed(0)
    tokens = torch.randn(3, 10, 4)
    centroids, attention = kmeans(tokens, 1)  # (11): the minimiser of (10) is the mean
    torch.testing.assert_close(centroids[:, 0], gap(tokens))
    torch.testing.assert_close(attention, torch.full((3, 1, 10), 0.1))


def test_kmeans_two_clusters_on_a_line():
    # points 0, 1, 10, 11 on a line: from any two distinct starting points Lloyd's iterations end at
    # centroids 0.5 and 10.5 (a start of {0, 1} assigns 1 to 0 after one update of the other centroid).
    tokens = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [11.0, 0.0]]])
    for seed in range(6):
        centroids, attention = kmeans(tokens, 2, iterations=10, generator=torch.Generator().manual_seed(seed))
        first = centroids[0, :, 0].sort().values
        torch.testing.assert_close(first, torch.tensor([0.5, 10.5]))
        torch.testing.assert_close(attention.sum(-1), torch.ones(1, 2))


def test_kmeans_pool_is_seeded_in_eval():
    x = torch.randn(2, 8, 5, 5)
    a = create_pool("kmeans", 8, seed=1).eval()
    b = create_pool("kmeans", 8, seed=1).eval()
    torch.testing.assert_close(a(x), b(x), atol=0, rtol=0)


def test_sinkhorn_plan_has_uniform_marginals():
    # (B13): P 1_k = 1_p / p and P^T 1_p = 1_k / k, once the iterations converge
    torch.manual_seed(0)
    B, k, N = 2, 3, 11
    plan = sinkhorn(torch.randn(B, k, N) * 3, iterations=200)  # (B, k, N), the paper's P transposed
    torch.testing.assert_close(plan.sum(dim=2), torch.full((B, k), 1 / k))
    torch.testing.assert_close(plan.sum(dim=1), torch.full((B, N), 1 / N), atol=1e-5, rtol=0)
    assert (plan >= 0).all()


def test_otk_attention_is_the_normalised_plan():
    torch.manual_seed(0)
    pool = create_pool("otk", 6, num_vectors=3, eps=0.5, iterations=200)
    x = torch.randn(2, 12, 6)
    pooled, attention = pool(x, return_attention=True)  # (B, k, C), (B, k, N)
    # the plan gives each location mass 1/N and each vector 1/k; normalising each vector's row to 1
    # multiplies by k, so each location carries total weight k/N over the k vectors
    torch.testing.assert_close(attention.sum(dim=1), torch.full((2, 12), 3 / 12), atol=1e-4, rtol=0)
    torch.testing.assert_close(pooled, attention @ x)  # (B15) with psi = id


def _avg3(fmap):
    """3x3 local average by explicit loops, border windows averaging only the cells inside the map."""
    B, C, H, W = fmap.shape
    out = torch.zeros_like(fmap)
    for i in range(H):
        for j in range(W):
            window = fmap[:, :, max(0, i - 1) : i + 2, max(0, j - 1) : j + 2]
            out[:, :, i, j] = window.mean(dim=(2, 3))
    return out


def test_how_attention_is_squared_norms_and_value_is_local_average():
    torch.manual_seed(0)
    fmap = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    pooled, attention = how(fmap)
    norms = (fmap**2).sum(dim=1).flatten(1)  # diag(X^T X): (B, N)   (B9)-(B10)
    torch.testing.assert_close(attention[:, 0], norms / norms.sum(-1, keepdim=True))
    z = torch.einsum("bcn,bn->bc", _avg3(fmap).flatten(2), norms)  # V a   (B12)
    torch.testing.assert_close(pooled, z / z.norm(dim=-1, keepdim=True))


def test_se_pool_is_timm_se_block_then_gap():
    torch.manual_seed(0)
    dim = 64
    ours = create_pool("se", dim)
    block = SEModule(dim)  # timm's SE block, (B, C, H, W) -> (B, C, H, W)
    with torch.no_grad():
        block.fc1.weight.copy_(ours.fc[0].weight[:, :, None, None])
        block.fc1.bias.copy_(ours.fc[0].bias)
        block.fc2.weight.copy_(ours.fc[2].weight[:, :, None, None])
        block.fc2.bias.copy_(ours.fc[2].bias)
    x = torch.randn(2, dim, 5, 3)
    torch.testing.assert_close(ours(x), block(x).mean(dim=(2, 3)))  # (B28)


def test_class_attention_with_identity_maps_is_softmax_attention_pooling():
    torch.manual_seed(0)
    u, X = torch.randn(2, 8), torch.randn(2, 5, 8)
    pooled, attention = class_attention(u, X, X, num_heads=1)
    a = torch.softmax(torch.einsum("bnc,bc->bn", X, u) / math.sqrt(8), dim=-1)  # sigma_2(X^T u / sqrt(d))
    torch.testing.assert_close(attention[:, 0], a)
    torch.testing.assert_close(pooled, torch.einsum("bn,bnc->bc", a, X))


def test_vit_pool_one_head_attention_is_the_plain_formula():
    torch.manual_seed(0)
    pool = create_pool("vit", 8, num_heads=1).eval()
    x = torch.randn(2, 6, 8)
    _, attention = pool(x, return_attention=True)
    block = pool.blocks[0]
    q = block.q(block.norm1(pool.cls_token))  # W_Q LN(u): (1, C)
    keys = block.k(block.norm1(x))  # W_K LN(X): (B, N, C)
    expected = torch.softmax(keys @ q[0] / math.sqrt(8), dim=-1)  # (B45)
    torch.testing.assert_close(attention, expected)


@pytest.mark.parametrize("gamma", [None, 1.25, 2.0, 3.0])
@pytest.mark.parametrize("num_heads", [1, 2])
@pytest.mark.parametrize("layout", ["map", "tokens"])
def test_framework_configured_as_simpool_equals_simpool(gamma, num_heads, layout):
    torch.manual_seed(0)
    dim = 8
    reference = create_pool("simpool", dim, gamma=gamma, num_heads=num_heads)
    framework = create_pool("framework", dim, gamma=gamma, num_heads=num_heads)
    with torch.no_grad():
        for p in (reference.norm.weight, reference.norm.bias):
            p.normal_()  # non-trivial LayerNorm affine parameters
        framework.norm.load_state_dict(reference.norm.state_dict())
        framework.layers[0].q.weight.copy_(reference.q.weight)
        framework.layers[0].k.weight.copy_(reference.k.weight)
    x = torch.randn(3, dim, 4, 5) if layout == "map" else torch.randn(3, 7, dim)
    out_ref, att_ref = reference(x, return_attention=True)
    out_fw, att_fw = framework(x, return_attention=True)
    torch.testing.assert_close(out_fw, out_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(att_fw, att_ref, atol=1e-6, rtol=1e-5)


def test_simpool_row_of_the_landscape_comes_from_the_framework():
    from simpool.pooling import components_of

    row = components_of("simpool")
    assert (row.u0, row.phi_q, row.phi_k, row.similarity, row.attention) == (
        "πA(X)",
        "WQU",
        "WKLN(X)",
        "x⊤y",
        "σ2(S/√d)",
    )
    assert row.phi_v == "LN(X) − min LN(X)"


def test_framework_sigmoid_attention_is_normalised_sigmoid():
    torch.manual_seed(0)
    pool = create_pool("framework", 4, attention="sigmoid", linear="", norm="")
    x = torch.randn(2, 5, 4)
    _, attention = pool(x, return_attention=True)
    scores = x @ x.mean(1).unsqueeze(-1) / 2  # K^T q / sqrt(d) with identity maps: (B, N, 1)
    expected = torch.sigmoid(scores[..., 0])
    torch.testing.assert_close(attention, expected / expected.sum(-1, keepdim=True))


def test_framework_rejects_bad_options():
    with pytest.raises(ValueError, match="valid: dot"):
        create_pool("framework", 8, similarity="l1")
    with pytest.raises(ValueError, match="identical vectors"):
        create_pool("framework", 8, num_vectors=2)
    with pytest.raises(ValueError, match="qkv"):
        create_pool("framework", 8, linear="qx")


def test_gradients_flow_to_features_through_kmeans():
    x = torch.randn(2, 9, 4, requires_grad=True)
    centroids, _ = kmeans(x, 3, generator=torch.Generator().manual_seed(0))
    centroids.sum().backward()
    # each centroid is an average of its features, so d(sum of centroids)/dx sums to k per channel
    torch.testing.assert_close(x.grad.sum(dim=1), torch.full((2, 4), 3.0))


def test_max_attention_counts_channel_maxima():
    # channel 0 peaks at location 2, channel 1 at location 0: weights 1/2 at each
    x = torch.tensor([[[0.0, 5.0], [1.0, 2.0], [3.0, 0.0]]])  # (B, N, C)
    _, attention = create_pool("max", 2)(x, return_attention=True)
    torch.testing.assert_close(attention, torch.tensor([[0.5, 0.0, 0.5]]))
