"""Fair arms: the parameters both models share start equal for a seed, and weight decay skips the same kinds of
parameter in both (timm's rule)."""

from __future__ import annotations

import torch

from simpool.experiments.demo import (
    bench_vit,
    copy_shared,
    decay_groups,
    demo_config,
    initial_vit,
    parameter_count,
)

CONFIG = demo_config("quick", depth=2, seed=5)
SIMPOOL_OWN = {
    "fc_norm.weight",  # the LayerNorm after the pool
    "fc_norm.bias",
    "attn_pool.pool.norm.weight",  # the pool's own
    "attn_pool.pool.norm.bias",
    "attn_pool.pool.q.weight",
    "attn_pool.pool.k.weight",
}


def test_shared_parameters_start_equal_and_the_rest_is_each_models_own():
    cls, sim = initial_vit("cls", CONFIG), initial_vit("simpool", CONFIG)
    cls_params, sim_params = dict(cls.named_parameters()), dict(sim.named_parameters())
    shared = set(cls_params) & set(sim_params)
    assert set(cls_params) - shared == {"cls_token"}
    assert set(sim_params) - shared == SIMPOOL_OWN
    for name in sorted(shared - {"pos_embed"}):
        assert torch.equal(cls_params[name], sim_params[name]), name
    # pos_embed: (1, 1 + 64, 96) for CLS (its first slot the CLS token's), (1, 64, 96) for SimPool: the patches'
    assert cls_params["pos_embed"].shape == (1, 65, 96) and sim_params["pos_embed"].shape == (1, 64, 96)
    assert torch.equal(cls_params["pos_embed"][:, 1:], sim_params["pos_embed"])
    # the CLS arm is the seed's plain CLS model (as before the arms shared weights); both are reproducible
    torch.manual_seed(CONFIG.seed)
    plain = bench_vit("cls", CONFIG)
    again = initial_vit("simpool", CONFIG)
    for name, value in plain.state_dict().items():
        assert torch.equal(value, cls.state_dict()[name]), name
    for name, value in again.state_dict().items():
        assert torch.equal(value, sim.state_dict()[name]), name
    # another seed, other weights
    other = initial_vit("cls", demo_config("quick", depth=2, seed=6))
    assert not torch.equal(other.state_dict()["blocks.0.attn.qkv.weight"], cls.state_dict()["blocks.0.attn.qkv.weight"])


def test_copy_shared_names_what_it_copied():
    torch.manual_seed(0)
    cls = bench_vit("cls", CONFIG)
    torch.manual_seed(1)
    sim = bench_vit("simpool", CONFIG)
    copied = copy_shared(cls, sim)
    assert set(copied) == set(sim.state_dict()) - SIMPOOL_OWN
    assert copied == [name for name in sim.state_dict() if name in set(copied)]  # in the target's order


def test_parameter_counts():
    # CLS: + the CLS token (96) and its position slot (96); SimPool: + two LayerNorms (2 x 192) and q, k (2 x 96^2)
    cls, sim = initial_vit("cls", CONFIG), initial_vit("simpool", CONFIG)
    common = parameter_count(cls) - 96 - 96
    assert parameter_count(sim) == common + 2 * 192 + 2 * 96 * 96


def test_weight_decay_skips_biases_norms_tokens_and_positions():
    for kind in ("cls", "simpool"):
        model = initial_vit(kind, CONFIG)
        names = {id(parameter): name for name, parameter in model.named_parameters()}
        groups = decay_groups(model, 0.05)
        assert [group["weight_decay"] for group in groups] == [0.0, 0.05]
        skipped, decayed = ({names[id(p)] for p in group["params"]} for group in groups)
        assert skipped | decayed == set(names.values()) and not skipped & decayed
        # decayed: every weight matrix (and the patch embedding's convolution), nothing else
        assert decayed == {name for name, p in model.named_parameters() if name.endswith(".weight") and p.ndim >= 2}
        assert {"pos_embed", "norm.weight", "norm.bias", "head.bias", "blocks.0.attn.qkv.bias"} <= skipped
        assert ("cls_token" in skipped) == (kind == "cls")
        assert ("attn_pool.pool.norm.weight" in skipped) == (kind == "simpool")
        assert ("attn_pool.pool.q.weight" in decayed) == (kind == "simpool")
