"""SimPool against the paper's formulas (12)-(17), (B52)-(B53), against timm, and on hard inputs."""

import math

import pytest
import timm
import torch

from simpool import SimPool, create_pool
from simpool.pooling import simpool_direct

GAMMAS = [None, 0.5, 1.0, 1.25, 2.0, 3.0, 5.0]


def paper_simpool(pool: SimPool, x: torch.Tensor):
    """Algorithm 2 written plainly, one image and one head at a time, in the paper's d x p layout.

    X is d x p (channels x locations). u0 = X 1/p; q = W_Q u0 (+b); X' = LN(X) column-wise;
    K = W_K X' (+b); a = softmax(K^T q / sqrt(d_head)) over locations; V = X' - min X' + eps;
    u = (V^gamma a)^(1/gamma), or u = X' a without gamma.
    """
    if x.ndim == 4:
        x = x.flatten(2).transpose(1, 2)
    B, N, C = x.shape
    h, D = pool.num_heads, C // pool.num_heads
    W_Q, W_K = pool.q.weight.double(), pool.k.weight.double()
    b_Q = pool.q.bias.double() if pool.q.bias is not None else torch.zeros(C, dtype=torch.double)
    b_K = pool.k.bias.double() if pool.k.bias is not None else torch.zeros(C, dtype=torch.double)
    g, beta_ln = pool.norm.weight.double(), pool.norm.bias.double()
    all_normed = []
    for b in range(B):
        X = x[b].double().T  # d x p
        mu = X.mean(0, keepdim=True)
        var = X.var(0, unbiased=False, keepdim=True)
        all_normed.append((X - mu) / torch.sqrt(var + pool.norm.eps) * g[:, None] + beta_ln[:, None])
    batch_min = min(Xn.min() for Xn in all_normed)
    outputs, attentions = [], []
    for b in range(B):
        X = x[b].double().T  # d x p
        u0 = X.sum(1) / N  # (12)
        q = W_Q @ u0 + b_Q  # (13)
        Xn = all_normed[b]  # LN(X), (B52)-(B53)
        K = W_K @ Xn + b_K[:, None]  # (14) with LN: d x p
        if pool.min_over == "sample":
            m = Xn.min()
        elif pool.min_over == "batch":
            m = batch_min
        else:
            m = Xn.min(1, keepdim=True).values  # per channel
        V = Xn - m + 1e-6 if pool.gamma is not None else Xn  # (16)
        u, heads = torch.zeros(C, dtype=torch.double), []
        for i in range(h):
            rows = slice(i * D, (i + 1) * D)
            a = torch.softmax(K[rows].T @ q[rows] / math.sqrt(D), dim=0)  # (15): p
            heads.append(a)
            if pool.gamma is None:
                u[rows] = Xn[rows] @ a
            else:
                u[rows] = (V[rows] ** pool.gamma @ a) ** (1 / pool.gamma)  # (17)
        if pool.beta is not None:
            u = u + pool.beta.double()
        outputs.append(u)
        attentions.append(torch.stack(heads))
    return torch.stack(outputs), torch.stack(attentions)  # (B, C), (B, h, p)


def random_pool(dim, seed=0, **kwargs):
    torch.manual_seed(seed)
    pool = SimPool(dim, **kwargs)
    with torch.no_grad():  # non-trivial LayerNorm affine and beta so that every term is exercised
        pool.norm.weight.uniform_(0.5, 1.5)
        pool.norm.bias.normal_(0, 0.3)
        if pool.beta is not None:
            pool.beta.fill_(0.1)
    return pool


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("num_heads", [1, 4])
@pytest.mark.parametrize("min_over", ["sample", "batch", "channel"])
@pytest.mark.parametrize("layout", ["map", "tokens"])
def test_matches_paper_formula(gamma, num_heads, min_over, layout):
    pool = random_pool(16, gamma=gamma, num_heads=num_heads, min_over=min_over, qkv_bias=True, use_beta=True)
    x = torch.randn(3, 16, 3, 5) * 2 + 0.5 if layout == "map" else torch.randn(3, 15, 16) * 2 + 0.5
    pooled, attention = pool(x, return_attention=True)
    expected, expected_attention = paper_simpool(pool, x)
    torch.testing.assert_close(pooled.double(), expected, rtol=1e-4, atol=1e-5)
    attention = attention.reshape(3, num_heads, 15).double()
    torch.testing.assert_close(attention, expected_attention, rtol=1e-4, atol=1e-6)
    # the kept direct formula (materialised K) gives the same numbers
    direct, direct_attention = simpool_direct(pool, x)
    torch.testing.assert_close(direct, pooled, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(direct_attention.reshape_as(attention).double(), attention, rtol=1e-4, atol=1e-6)


def test_attention_layout_and_normalisation():
    pool = SimPool(8, gamma=2.0)
    pooled, attention = pool(torch.randn(2, 8, 3, 5), return_attention=True)
    assert pooled.shape == (2, 8) and attention.shape == (2, 3, 5)
    torch.testing.assert_close(attention.sum((1, 2)), torch.ones(2))
    _, attention = SimPool(8, num_heads=2)(torch.randn(2, 7, 8), return_attention=True)
    assert attention.shape == (2, 2, 7)
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, 2))


@pytest.mark.parametrize("gamma", [None, 1.25, 2.0])
@pytest.mark.parametrize("num_heads", [1, 4])
def test_channel_mode_matches_timm(gamma, num_heads):
    torch.manual_seed(0)
    reference = timm.layers.SimPool2d(32, num_heads=num_heads, gamma=gamma, qkv_bias=True)
    ours = SimPool(32, num_heads=num_heads, gamma=gamma, qkv_bias=True, min_over="channel", norm_eps=1e-5)
    ours.load_state_dict(reference.state_dict())  # same parameter names: weights interchange
    x = torch.randn(4, 32, 7, 7)
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)
    reference_1d = timm.layers.SimPool1d(32, num_heads=num_heads, gamma=gamma, qkv_bias=True)
    reference_1d.load_state_dict(reference.state_dict())
    tokens = x.flatten(2).transpose(1, 2)
    torch.testing.assert_close(ours(tokens), reference_1d(tokens), rtol=1e-5, atol=1e-5)
    assert set(ours.state_dict()) == set(reference.state_dict())


def test_sample_mode_is_independent_of_the_batch():
    pool = random_pool(16, gamma=2.0, min_over="sample")
    x = torch.randn(4, 16, 5, 5)
    other = x.clone()
    other[1:] = torch.randn(3, 16, 5, 5) * 100 - 50  # very different companions, different minima
    torch.testing.assert_close(pool(x)[0], pool(other)[0])
    torch.testing.assert_close(pool(x[:1])[0], pool(x)[0])
    # the official batch minimum does depend on the companions: the test above can fail
    batch_pool = random_pool(16, gamma=2.0, min_over="batch")
    assert not torch.allclose(batch_pool(x)[0], batch_pool(other)[0])


def test_no_gamma_with_zero_projections_is_gap_of_layernorm():
    pool = random_pool(16, gamma=None)
    torch.nn.init.zeros_(pool.q.weight)
    torch.nn.init.zeros_(pool.k.weight)
    x = torch.randn(3, 16, 4, 6)
    normed = pool.norm(x.flatten(2).transpose(1, 2))  # (B, N, C)
    pooled, attention = pool(x, return_attention=True)
    torch.testing.assert_close(pooled, normed.mean(1))
    torch.testing.assert_close(attention, torch.full((3, 4, 6), 1 / 24))


def test_key_bias_does_not_change_attention():
    # W_K's bias adds q.b_K to every score of an image: the softmax ignores it
    pool = random_pool(16, gamma=2.0, qkv_bias=True)
    x = torch.randn(2, 16, 3, 3)
    before = pool(x)
    with torch.no_grad():
        pool.k.bias.normal_(0, 5)
    torch.testing.assert_close(pool(x), before)
    torch.testing.assert_close(simpool_direct(pool, x)[0], before, rtol=1e-4, atol=1e-5)


HARD_INPUTS = {
    "random": lambda: torch.randn(2, 8, 3, 3),
    "constant": lambda: torch.full((2, 8, 3, 3), 3.0),
    "tiny": lambda: torch.randn(2, 8, 3, 3) * 1e-8,
    "huge": lambda: torch.randn(2, 8, 3, 3) * 1e4,
    "batch1": lambda: torch.randn(1, 8, 3, 3),
    "one_location": lambda: torch.randn(2, 8, 1, 1),
}


@pytest.mark.parametrize("gamma", [0.5, 1.0, 1.25, 2.0, 3.0, 5.0])
@pytest.mark.parametrize("case", sorted(HARD_INPUTS))
@pytest.mark.parametrize("min_over", ["sample", "channel"])
def test_finite_outputs_and_gradients(gamma, case, min_over):
    torch.manual_seed(0)
    pool = SimPool(8, gamma=gamma, min_over=min_over)
    x = HARD_INPUTS[case]().requires_grad_()
    pooled = pool(x)
    expected, _ = paper_simpool(pool, x.detach())  # in float64, one image at a time
    torch.testing.assert_close(pooled.double(), expected, rtol=1e-4, atol=1e-5)
    pooled.square().sum().backward()
    assert torch.isfinite(x.grad).all()
    for name, parameter in pool.named_parameters():
        assert torch.isfinite(parameter.grad).all(), name


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("gamma", [1.25, 2.0, 5.0])
def test_finite_under_autocast(dtype, gamma):
    torch.manual_seed(0)
    pool = SimPool(16, gamma=gamma)
    x = (torch.randn(2, 16, 4, 4) * 30).requires_grad_()
    with torch.autocast("cpu", dtype=dtype):
        pooled = pool(x)
    assert torch.isfinite(pooled).all()
    pooled.float().sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(pool.k.weight.grad).all()
    torch.testing.assert_close(pooled.float(), pool(x).float(), rtol=0, atol=0)  # computed in float32 inside


def test_half_precision_inputs_keep_their_dtype():
    pool = SimPool(8, gamma=2.0).to(torch.bfloat16)
    pooled = pool(torch.randn(2, 8, 3, 3, dtype=torch.bfloat16))
    assert pooled.dtype == torch.bfloat16 and torch.isfinite(pooled.float()).all()


def test_bad_arguments_name_the_input():
    with pytest.raises(ValueError, match="min_over"):
        SimPool(8, min_over="global")
    with pytest.raises(ValueError, match="num_heads"):
        SimPool(10, num_heads=4)
    with pytest.raises(ValueError, match="gamma"):
        SimPool(8, gamma=0)
    with pytest.raises(ValueError, match=r"\(2, 8\)"):
        SimPool(8)(torch.randn(2, 8))
    with pytest.raises(ValueError, match="dim=8"):
        SimPool(8)(torch.randn(2, 6, 3, 3))


def test_registry_builds_simpool_and_rejects_unknown_names():
    pool = create_pool("simpool", 12, gamma=1.25)
    assert isinstance(pool, SimPool) and pool.out_features == 12 and pool.gamma == 1.25
    with pytest.raises(ValueError, match="valid pools: .*simpool"):
        create_pool("simpol", 12)


def test_keys_are_the_materialised_key_matrix():
    pool = random_pool(16, qkv_bias=True)
    x = torch.randn(2, 16, 3, 4)
    tokens = x.flatten(2).transpose(1, 2)
    torch.testing.assert_close(pool.keys(x), pool.norm(tokens) @ pool.k.weight.T + pool.k.bias)


@pytest.mark.parametrize("gamma", [1.0, 1.25, 2.0, 3.0])
@pytest.mark.parametrize("num_heads", [1, 2])
@pytest.mark.parametrize("min_over", ["sample", "batch", "channel"])
def test_fused_backward_matches_autograd_of_the_direct_formula(gamma, num_heads, min_over):
    pool = random_pool(8, gamma=gamma, num_heads=num_heads, min_over=min_over, qkv_bias=True).double()
    x = torch.randn(3, 8, 2, 3, dtype=torch.double)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    weights = torch.randn(3, 8, dtype=torch.double)  # a generic upstream gradient
    (pool(x_ours) * weights).sum().backward()
    ours = {name: p.grad.clone() for name, p in pool.named_parameters()}
    pool.zero_grad()
    (simpool_direct(pool, x_ref)[0] * weights).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad)
    for name, p in pool.named_parameters():
        torch.testing.assert_close(ours[name], p.grad, msg=name)


def test_fused_backward_passes_gradcheck():
    pool = random_pool(4, gamma=1.25, num_heads=2).double()
    x = torch.randn(2, 4, 2, 2, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: pool(t), (x,))
