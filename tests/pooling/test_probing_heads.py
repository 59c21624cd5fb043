"""The attentive-probing heads (issue 16): each against its defining equations, written plainly here, and
``map``/``clip`` against timm's layers. The contract itself (shapes, attention sums, gradients, compile) is
checked over the registry by ``test_contract.py`` and ``test_compile.py``."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from timm.layers import AttentionPool2d as TimmAttentionPool2d
from timm.layers import AttentionPoolLatent as TimmAttentionPoolLatent
from torch import nn

from simpool.pooling import (
    ABMILPool,
    AttentionalPooler,
    AttentionPool2d,
    AttentionPoolingClassifier,
    AttentionPoolLatent,
    AttentivePooler,
    CAEAttentivePool,
    DinoViTPool,
    DOLGPool,
    EfficientProbing,
    ESimPool,
    create_pool,
    image_attention,
    list_aliases,
    list_pools,
)

EXACT = dict(atol=1e-6, rtol=1e-6)


def _tokens(B=2, N=6, C=8, seed=0):
    torch.manual_seed(seed)
    return torch.randn(B, N, C)


# --- ep -------------------------------------------------------------------------------------------


def test_ep_with_identity_values_is_a_softmax_weighted_mean_per_channel_group():
    # W_V = I: query m pools channels [m*C/M, (m+1)*C/M) of X with a_m = softmax(X q_m / sqrt(C))
    C, M = 4, 2
    pool = EfficientProbing(C, num_queries=M)
    with torch.no_grad():
        pool.v.weight.copy_(torch.eye(C))
        pool.cls_token.copy_(torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0]]]))
    x = torch.tensor([[[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, 1.0], [2.0, 0.0, 1.0, 0.0]]])  # (1, 3, 4)
    # query 1 scores: x_n[0] / 2 = (0.5, 0, 1); query 2 scores: 2 x_n[3] / 2 = (4, 1, 0)
    a1 = torch.softmax(torch.tensor([0.5, 0.0, 1.0]), 0)
    a2 = torch.softmax(torch.tensor([4.0, 1.0, 0.0]), 0)
    expected = torch.cat([a1 @ x[0, :, :2], a2 @ x[0, :, 2:]])  # (4,)
    pooled, attention = pool(x, return_attention=True)
    torch.testing.assert_close(pooled[0], expected, **EXACT)
    torch.testing.assert_close(attention[0], torch.stack([a1, a2]), **EXACT)


def test_ep_d_out_narrows_the_output_and_loads_reference_names():
    pool = EfficientProbing(16, num_queries=4, d_out=2)
    assert pool.out_features == 8 and pool(_tokens(C=16)).shape == (2, 8)
    state = {"v.weight": torch.randn(8, 16), "cls_token": torch.randn(1, 4, 16)}  # the reference's names
    pool.load_reference_state_dict(state)
    torch.testing.assert_close(pool.cls_token, state["cls_token"])


def test_ep_rejects_queries_that_do_not_divide_the_width():
    with pytest.raises(ValueError, match="num_queries"):
        EfficientProbing(16, num_queries=32)


# --- abmilp ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("gated", [False, True])
def test_abmilp_weights_are_the_softmax_of_the_instance_scores(gated):
    x = _tokens()
    pool = ABMILPool(8, hidden_dim=5, gated=gated)
    hidden = torch.tanh(x @ pool.hidden.weight.T + pool.hidden.bias)  # tanh(V h): (B, N, L)
    if gated:  # (9): tanh(V h) * sigm(U h)
        hidden = hidden * torch.sigmoid(x @ pool.gate.weight.T + pool.gate.bias)
    scores = (hidden @ pool.score.weight.T + pool.score.bias)[..., 0]  # w^T (...): (B, N)
    weights = torch.softmax(scores, dim=1)
    pooled, attention = pool(x, return_attention=True)
    torch.testing.assert_close(attention, weights, **EXACT)
    torch.testing.assert_close(pooled, (weights[..., None] * x).sum(1), **EXACT)


def test_abmilp_loads_the_reference_names():
    pool = ABMILPool(8)
    state = {
        "attention_predictor.0.weight": torch.randn(8, 8),
        "attention_predictor.0.bias": torch.randn(8),
        "attention_predictor.2.weight": torch.randn(1, 8),
        "attention_predictor.2.bias": torch.randn(1),
    }
    pool.load_reference_state_dict(state)
    torch.testing.assert_close(pool.score.weight, state["attention_predictor.2.weight"])


# --- aim ------------------------------------------------------------------------------------------


def test_aim_output_is_the_mean_of_the_query_outputs():
    # M queries do not interact: each alone (a one-query pool with the same k, v) gives its output
    x = _tokens()
    pool = AttentionPoolingClassifier(8, num_heads=2, num_queries=3).eval()
    singles = []
    for m in range(3):
        single = AttentionPoolingClassifier(8, num_heads=2, num_queries=1).eval()
        state = pool.state_dict() | {"cls_token": pool.cls_token[:, m : m + 1].detach()}
        single.load_state_dict(state)
        singles.append(single(x))
    torch.testing.assert_close(pool(x), torch.stack(singles).mean(0), **EXACT)


def test_aim_single_head_query_equals_the_formula():
    x = _tokens()
    pool = AttentionPoolingClassifier(8, num_heads=1, use_batch_norm=False)
    q = pool.cls_token[0]  # (1, C)
    a = torch.softmax(q @ pool.k(x).transpose(1, 2) / 8**0.5, dim=-1)  # (B, 1, N)
    expected = (a @ pool.v(x))[:, 0]
    pooled, attention = pool(x, return_attention=True)
    torch.testing.assert_close(pooled, expected, **EXACT)
    torch.testing.assert_close(attention, a[:, 0], **EXACT)


# --- coca and cae ---------------------------------------------------------------------------------


def test_coca_is_multi_query_attention_of_the_normalised_queries():
    x = _tokens()
    pool = AttentionalPooler(8, num_heads=2, head_dim=3)
    q = pool.q(F.layer_norm(pool.queries, (8,), pool.norm.weight)).view(1, 2, 3)  # (M=1, h, d)
    k, v = pool.kv(x).split(3, dim=-1)  # one key and value head for both query heads: (B, N, d)
    a = torch.softmax(torch.einsum("hd,bnd->bhn", q[0], k) / 3**0.5, dim=-1)  # (B, h, N)
    expected = pool.proj(torch.einsum("bhn,bnd->bhd", a, v).reshape(2, 6))
    pooled, attention = pool(x, return_attention=True)
    torch.testing.assert_close(pooled, expected, **EXACT)
    torch.testing.assert_close(attention, a, **EXACT)


def test_coca_loads_the_first_reference_query():
    pool = AttentionalPooler(8, num_heads=2, head_dim=3)
    state = {"img_queries": torch.randn(196, 8), "norm.gamma": torch.rand(8), "norm.beta": torch.zeros(8)}
    state |= {"to_q.weight": torch.randn(6, 8), "to_kv.weight": torch.randn(6, 8), "to_out.weight": torch.randn(8, 6)}
    pool.load_reference_state_dict(state)
    torch.testing.assert_close(pool.queries, state["img_queries"][:1])
    with pytest.raises(KeyError, match="unexpected"):
        pool.load_reference_state_dict(state | {"ff.0.weight": torch.zeros(1)})


def test_cae_zero_query_attends_uniformly_at_initialisation():
    # LN(0) = 0 and no query bias: every score is 0, so z = W_O mean_n(W_V LN_v(x_n)) + b_O
    x = _tokens()
    pool = CAEAttentivePool(8, num_heads=2)
    pooled, attention = pool(x, return_attention=True)
    torch.testing.assert_close(attention, torch.full((2, 2, 6), 1 / 6), **EXACT)
    torch.testing.assert_close(pooled, pool.proj(pool.v(pool.norm_v(x)).mean(1)), **EXACT)


def test_cae_loads_the_reference_names_without_the_unused_norm():
    pool = CAEAttentivePool(8, num_heads=2, qkv_bias=True)
    ours = pool.state_dict()
    reference = {}
    for key, value in ours.items():
        name = key.replace("norm_", "norm1_")
        reference[name if name.startswith("norm1_") else f"cross_attn.{key}"] = torch.randn_like(value)
    reference |= {"norm2_cross.weight": torch.ones(8), "norm2_cross.bias": torch.zeros(8)}
    pool.load_reference_state_dict(reference)
    torch.testing.assert_close(pool.q_bias, reference["cross_attn.q_bias"])


# --- jepa -----------------------------------------------------------------------------------------


def test_jepa_depth_two_works_and_adds_a_block():
    x = _tokens()
    one, two = AttentivePooler(8, num_heads=2, depth=1), AttentivePooler(8, num_heads=2, depth=2)
    one.load_state_dict({k: v for k, v in two.state_dict().items() if not k.startswith("blocks.")})
    assert len(two.blocks) == 1
    pooled, attention = two(x, return_attention=True)
    assert pooled.shape == (2, 8) and attention.shape == (2, 2, 6)
    pooled.square().sum().backward()
    assert all(p.grad is not None for p in two.parameters())
    two.blocks = nn.ModuleList()  # without its second block it is the depth-1 pooler
    torch.testing.assert_close(two(x), one(x), **EXACT)


def test_jepa_block_equals_its_equations():
    x = _tokens()
    pool = AttentivePooler(8, num_heads=1)
    block = pool.cross_attention_block
    u = pool.query_tokens[0]  # (1, C)
    context = block.norm1(x)
    k, v = block.xattn.kv(context).split(8, dim=-1)
    a = torch.softmax(block.xattn.q(u) @ k.transpose(1, 2) / 8**0.5, dim=-1)  # (B, 1, N)
    g = u + block.xattn.proj(a @ v)  # (B, 1, C)
    expected = (g + block.mlp(block.norm2(g)))[:, 0]
    torch.testing.assert_close(pool(x), expected, **EXACT)


# --- dolg -----------------------------------------------------------------------------------------


def test_dolg_is_the_mean_of_softplus_weighted_normalised_local_features():
    torch.manual_seed(0)
    fmap = torch.randn(2, 8, 3, 3)
    pool = DOLGPool(8).eval()
    local = pool.bn(pool.conv1(fmap))  # (B, C, H, W)
    score = F.softplus(pool.conv2(local.relu()))  # (B, 1, H, W)
    expected = (score * local / local.norm(dim=1, keepdim=True)).mean(dim=(2, 3))
    pooled, attention = pool(fmap, return_attention=True)
    torch.testing.assert_close(pooled, expected, **EXACT)
    torch.testing.assert_close(attention, score[:, 0] / score.sum(dim=(1, 2, 3))[:, None, None], **EXACT)


# --- map and clip against timm --------------------------------------------------------------------

MAP_CASES = {
    "vit": (dict(norm_layer=functools.partial(nn.LayerNorm, eps=1e-6)), {}),  # as timm's ViTs build it
    "standalone": ({}, dict(norm=False)),
    "avg of 3": (dict(latent_len=3, pool_type="avg", norm_layer=nn.LayerNorm), dict(num_queries=3, pool_type="avg")),
    "no q_proj": (dict(q_proj=False, norm_layer=functools.partial(nn.LayerNorm, eps=1e-6)), dict(q_proj=False)),
    # timm's constructor arguments with timm's meaning (issue 28)
    "pre-logits": (dict(out_features=0), dict(out_features=0)),
    "latent_len 2, out 24, mlp 2": (
        dict(latent_len=2, pool_type="avg", out_features=24, mlp_ratio=2.0, norm_layer=nn.LayerNorm),
        dict(latent_len=2, pool_type="avg", out_features=24, mlp_ratio=2.0),
    ),
}


@pytest.mark.parametrize("case", MAP_CASES.values(), ids=MAP_CASES.keys())
def test_map_matches_timm_attention_pool_latent(case):
    timm_kwargs, our_kwargs = case
    torch.manual_seed(0)
    reference = TimmAttentionPoolLatent(16, num_heads=4, **timm_kwargs).eval()
    with torch.no_grad():  # timm zero-initialises some biases: randomise every parameter
        for p in reference.parameters():
            p.normal_(0, 0.2)
    if timm_kwargs.get("norm_layer") is nn.LayerNorm:
        reference.norm.eps = 1e-6  # ours is LayerNorm(eps=1e-6)
    pool = AttentionPoolLatent(16, num_heads=4, **our_kwargs).eval()
    pool.load_reference_state_dict(reference.state_dict())
    x = _tokens(N=7, C=16)
    with torch.no_grad():
        pooled, attention = pool(x, return_attention=True)
        # timm's fused kernel (scaled_dot_product_attention) rounds differently: ~1e-6 relative
        torch.testing.assert_close(pooled, reference(x), atol=1e-5, rtol=1e-5)
        reference.fused_attn = False  # timm's explicit path: the same operations as ours
        torch.testing.assert_close(pooled, reference(x), **EXACT)
    # timm's fused kernel hides the weights: the attention from timm's own projections
    q = reference.q(reference.latent).view(-1, 4, 4).transpose(0, 1)  # (h, M, d)
    k = reference.kv(x)[..., :16].view(2, 7, 4, 4).transpose(1, 2)  # (B, h, N, d)
    a = torch.softmax(q @ k.transpose(-1, -2) / 2, dim=-1)  # (B, h, M, N)
    expected = a[:, :, 0] if our_kwargs.get("pool_type") != "avg" else a.transpose(1, 2).reshape(2, -1, 7)
    torch.testing.assert_close(attention, expected.detach(), **EXACT)
    assert pool.out_features == reference.out_features == pooled.shape[-1]


def test_map_pre_logits_is_the_heads_outputs_without_projection_or_mlp():
    pool = AttentionPoolLatent(16, out_features=0, num_heads=4)
    assert pool.mlp is None and isinstance(pool.proj, nn.Identity) and isinstance(pool.norm, nn.Identity)
    x = _tokens(N=5, C=16)
    q = pool.q(pool.latent)[0].view(1, 4, 4).transpose(0, 1)  # (h, 1, d)
    k, v = pool.kv(x).split(16, dim=-1)  # (B, N, C) each
    k, v = (t.view(2, 5, 4, 4).transpose(1, 2) for t in (k, v))  # (B, h, N, d)
    z = (torch.softmax(q @ k.transpose(-1, -2) / 2, dim=-1) @ v).transpose(1, 2).reshape(2, 16)  # (B, C)
    torch.testing.assert_close(pool(x), z, **EXACT)


def test_map_latent_len_and_num_queries_are_one_setting():
    pool = AttentionPoolLatent(16, num_heads=4, num_queries=3)
    assert pool.latent.shape == (1, 3, 16) and pool.latent_len == 3
    assert not hasattr(pool, "num_queries")  # stored once, under timm's name
    with pytest.raises(ValueError, match="latent_len=2 and num_queries=3"):
        AttentionPoolLatent(16, num_heads=4, latent_len=2, num_queries=3)


CLIP_CASES = {
    "grid 4x4": (dict(feat_size=4), (4, 4)),
    "resampled 3x5": (dict(feat_size=4), (3, 5)),
    "qkv separate": (dict(feat_size=4, qkv_separate=True), (4, 4)),
    "class token": (dict(feat_size=(2, 3), class_token=True), (5, 3)),
    # timm's constructor arguments with timm's meaning (issue 28)
    "pre-logits": (dict(feat_size=4, out_features=0), (4, 4)),
    "out 24, head_dim 8": (dict(feat_size=4, out_features=24, num_heads=None, head_dim=8), (3, 4)),
    "qkv separate, out 0": (dict(feat_size=4, qkv_separate=True, out_features=0, pool_type="token"), (4, 4)),
}


@pytest.mark.parametrize("case", CLIP_CASES.values(), ids=CLIP_CASES.keys())
def test_clip_matches_timm_attention_pool_2d(case):
    kwargs, grid = case
    torch.manual_seed(0)
    kwargs = {"num_heads": 4, **kwargs}
    reference = TimmAttentionPool2d(16, **kwargs).eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.normal_(0, 0.2)
    pool = AttentionPool2d(16, **kwargs).eval()
    pool.load_reference_state_dict(reference.state_dict())  # strict
    fmap = torch.randn(2, 16, *grid)
    with torch.no_grad():
        pooled, attention = pool(fmap, return_attention=True)
        torch.testing.assert_close(pooled, reference(fmap), **EXACT)
    assert attention.shape == (2, reference.num_heads, *grid)
    assert pool.out_features == reference.out_features == pooled.shape[-1]


def test_clip_attention_drops_the_mean_key_and_renormalises():
    torch.manual_seed(0)
    pool = AttentionPool2d(8, feat_size=2, num_heads=1).eval()
    fmap = torch.randn(1, 8, 2, 2)
    tokens = torch.cat([fmap.flatten(2).mean(2, keepdim=True), fmap.flatten(2)], 2).transpose(1, 2) + pool.pos_embed
    q, k, _ = pool.qkv(tokens).split(8, dim=-1)  # (1, 5, C) each
    a = torch.softmax(q[:, :1] @ k.transpose(1, 2) / 8**0.5, dim=-1)[0, 0, 1:]  # to the 4 locations
    _, attention = pool(fmap, return_attention=True)
    torch.testing.assert_close(attention.flatten(), (a / a.sum()).detach(), **EXACT)


def test_clip_tokens_lie_on_a_square_grid_or_one_row():
    torch.manual_seed(0)
    pool = AttentionPool2d(16, feat_size=3, num_heads=4).eval()
    square, row = torch.randn(2, 16, 4, 4), torch.randn(2, 16, 1, 7)
    with torch.no_grad():
        torch.testing.assert_close(pool(square.flatten(2).transpose(1, 2)), pool(square), **EXACT)
        torch.testing.assert_close(pool(row.flatten(2).transpose(1, 2)), pool(row), **EXACT)


# --- one map per image ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ep", "aim", "abmilp"])
def test_image_attention_is_the_mean_over_queries(name):
    kwargs = {"ep": dict(num_queries=4), "aim": dict(num_heads=2, num_queries=2), "abmilp": {}}[name]
    pool = create_pool(name, 8, **kwargs).eval()
    fmap = torch.randn(2, 8, 3, 5)
    with torch.no_grad():
        _, attention = pool(fmap, return_attention=True)
    maps = image_attention(attention, fmap)
    assert maps.shape == (2, 3, 5)
    torch.testing.assert_close(maps.sum(dim=(1, 2)), torch.ones(2), **EXACT)
    expected = attention.mean(1) if attention.ndim == 4 else attention
    torch.testing.assert_close(maps, expected, atol=0, rtol=0)


# --- efficient-probing's names (issue 29): siglip, esimpool, dinovit, cait, cbam, simpool ------------------


def test_siglip_is_map_with_timms_standalone_defaults():
    assert list_aliases()["siglip"] == "map(norm=False)"
    assert "siglip" in list_pools(aliases=True) and "siglip" not in list_pools()
    siglip = create_pool("siglip", 16, num_heads=4)
    assert type(siglip) is AttentionPoolLatent and isinstance(siglip.norm, nn.Identity)
    assert isinstance(create_pool("siglip", 16, num_heads=4, norm=True).norm, nn.LayerNorm)  # kwargs override
    reference = TimmAttentionPoolLatent(16, num_heads=4)  # efficient-probing's AttentionPoolLatent(in_features=dim)
    siglip.load_reference_state_dict(reference.state_dict())  # strict
    x = _tokens(N=5, C=16)
    with torch.no_grad():
        torch.testing.assert_close(siglip(x), reference(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="siglip"):  # an unknown name lists the aliases too
        create_pool("siglipp", 16)


def test_esimpool_is_simpool_without_its_linears():
    # q = LN(mean X), K = LN(X), V = X; per head of d channels a = softmax(K q / sqrt(d))
    pool = ESimPool(8, num_heads=2)
    x = _tokens(N=5, C=8)
    ln = functools.partial(F.layer_norm, normalized_shape=(8,), eps=1e-6)
    q, k = ln(x.mean(1)), ln(x)  # (B, C), (B, N, C)
    a = torch.stack(
        [torch.softmax(k[..., h * 4 : (h + 1) * 4] @ q[:, h * 4 : (h + 1) * 4, None] / 2, 1) for h in (0, 1)]
    )
    expected = torch.cat([(a[h] * x[..., h * 4 : (h + 1) * 4]).sum(1) for h in (0, 1)], dim=-1)  # (B, C)
    pooled, attention = pool(x, return_attention=True)
    torch.testing.assert_close(pooled, expected, **EXACT)
    torch.testing.assert_close(attention, a[..., 0].permute(1, 0, 2), **EXACT)
    assert create_pool("esimpool", 768).num_heads == 12  # the reference's 12 at ViT-B's width


def test_dinovit_is_the_mean_of_one_vit_block_and_attends_uniformly():
    pool = DinoViTPool(16, num_heads=4).eval()
    x = _tokens(N=6, C=16)
    with torch.no_grad():
        pooled, attention = pool(x, return_attention=True)
        torch.testing.assert_close(pooled, pool.block(x).mean(1), **EXACT)
    torch.testing.assert_close(attention, torch.full((2, 6), 1 / 6), **EXACT)
    assert pool.block.attn.qkv.bias is None and isinstance(pool.block.ls1, nn.Identity)


def _renamed(state: dict, renames: dict[str, str], reshape: dict | None = None) -> dict:
    """Our state dict under the reference's names (the inverse of a loader's renames), values randomised."""
    torch.manual_seed(3)
    out = {}
    for key, value in state.items():
        for ours, theirs in renames.items():
            key = key.replace(ours, theirs)
        value = torch.randn_like(value) if value.is_floating_point() else value
        out[key] = value.reshape(reshape[key]) if reshape and key in reshape else value
    return out


LOADERS = {
    "simpool": ({"norm.": "norm_patches.", "q.": "wq.", "k.": "wk."}, {}, {}),
    "esimpool": ({"norm.": "norm_patches."}, {}, dict(num_heads=2)),
    "cait": (
        {
            "blocks.": "blocks_token_only.",
            ".q.": ".attn.q.",
            ".k.": ".attn.k.",
            ".v.": ".attn.v.",
            ".proj.": ".attn.proj.",
            ".ls1.gamma": ".gamma_1",
            ".ls2.gamma": ".gamma_2",
        },
        {"cls_token": (1, 1, 16)},
        {},
    ),
    "dinovit": ({"block.": "dino_block."}, {}, dict(num_heads=4)),
    "cbam_ep": (
        {"fc.0.": "channel.fc1.", "fc.2.": "channel.fc2.", "conv.": "spatial.conv.conv.", "norm.": "spatial.conv.bn."},
        {"channel.fc1.weight": (1, 16, 1, 1), "channel.fc2.weight": (16, 1, 1, 1)},
        {},  # the alias carries efficient-probing's arguments
    ),
}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_reference_state_dicts_load_strictly_under_their_names(name):
    renames, shapes, kwargs = LOADERS[name]
    source = create_pool(name, 16, **kwargs).eval()
    theirs = _renamed(source.state_dict(), renames, shapes)
    assert set(theirs) != set(source.state_dict())  # the names differ
    loaded = create_pool(name, 16, **kwargs).eval()
    loaded.load_reference_state_dict(theirs)
    for key, value in loaded.state_dict().items():  # every tensor came from the reference's
        if value.is_floating_point():
            assert not torch.equal(value, source.state_dict()[key]), key


def test_efficient_probings_cbam_and_clip_are_aliases_and_the_plain_names_stay_the_papers():
    assert list_aliases() == {
        "cbam_ep": "cbam(mlp_bias=False, rd_divisor=1, spatial_norm=True, residual=True)",
        "clip_ep": "clip(feat_size=14, num_heads=4, norm=True)",
        "siglip": "map(norm=False)",
    }
    ep, paper = create_pool("cbam_ep", 64), create_pool("cbam", 64)
    assert (ep.fc[0].out_features, type(ep.norm), ep.residual) == (4, nn.BatchNorm2d, True)  # 64/16, rounded to 1
    assert ep.fc[0].bias is None and ep.conv.bias is None
    assert (paper.fc[0].out_features, type(paper.norm), paper.residual) == (8, nn.Identity, False)  # 64/16 -> 8 (of 8)
    assert paper.fc[0].bias is not None and paper.conv.bias is not None
    ep, timm_like = create_pool("clip_ep", 64), create_pool("clip", 64)
    assert (ep.num_heads, ep.feat_size, type(ep.norm)) == (4, (14, 14), nn.LayerNorm)
    assert (timm_like.num_heads, timm_like.feat_size, type(timm_like.norm)) == (1, (7, 7), nn.Identity)


def test_cbam_of_efficient_probing_pools_the_relu_of_the_residual():
    pool = create_pool("cbam_ep", 16).eval()
    assert pool.fc[0].bias is None and pool.conv.bias is None and pool.fc[0].out_features == 1  # round(16 / 16)
    fmap = torch.randn(2, 16, 3, 3)
    with torch.no_grad():
        gate = (pool.fc(fmap.mean((2, 3))) + pool.fc(fmap.amax((2, 3)))).sigmoid()[..., None, None]  # (B, C, 1, 1)
        v = fmap * gate
        a = pool.norm(pool.conv(torch.stack([v.mean(1), v.amax(1)], 1))).sigmoid()  # (B, 1, H, W)
        torch.testing.assert_close(pool(fmap), F.relu(v * a + fmap).mean((2, 3)), **EXACT)
