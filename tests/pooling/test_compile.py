"""Every registered pool is one ``torch.compile(fullgraph=True)`` graph, forward and backward, with eager's numbers.

The broad sweep uses the ``aot_eager`` backend (Dynamo's graph and AOTAutograd's backward, eager
kernels: seconds per case); a representative subset goes through the default inductor backend,
which generates and compiles C++ kernels (tens of seconds per case on two cores, hence ``slow``);
k-means (5 unrolled iterations, 710 s in one run) and Slot Attention (its unrolled GRU) take minutes there,
so they are covered by ``aot_eager`` only.
Models built by ``create_model`` trace with no graph break (``torch._dynamo.explain``).
"""

from __future__ import annotations

import pytest
import torch

from simpool import SimPool, create_model
from simpool.pooling import create_pool, list_pools
from tests.pooling.pool_kwargs import tiny_kwargs

DIM = 16  # divisible by the 4 heads of vit/cait
SHAPES = {"map": (2, DIM, 3, 5), "tokens": (2, 7, DIM)}
# aot_eager runs eager's own kernels on the traced graph, so differences are reassociation only;
# inductor fuses and reorders reductions (and may use other math for exp/pow): float32 noise.
TOLERANCE = {"aot_eager": dict(atol=1e-5, rtol=1e-5), "inductor": dict(atol=1e-4, rtol=1e-4)}
TINY_MODELS = {
    "resnet18": {},
    "convnext_atto": {},
    "vit_tiny_patch16_224": dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2),
}


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()  # no cache or recompilation limit carried over from another case
    yield
    torch._dynamo.reset()


def _pool(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_pool(name, DIM, **(tiny_kwargs(name) | kwargs)).eval()  # eval: kmeans and slot draw seeded noise


def _run(pool: torch.nn.Module, x: torch.Tensor):
    """Output, attention and the gradients of the input and every parameter, for one loss."""
    x = x.detach().clone().requires_grad_()
    pool.zero_grad(set_to_none=True)
    pooled, attention = pool(x, return_attention=True)
    (pooled.float().square().sum() + attention.float().square().sum()).backward()
    parameters = getattr(pool, "_orig_mod", pool).named_parameters()  # a compiled module's are its original's
    grads = {"input": x.grad} | {name: p.grad for name, p in parameters if p.grad is not None}
    return pooled.detach(), attention.detach(), grads


def assert_compiled_matches_eager(pool: torch.nn.Module, x: torch.Tensor, backend: str) -> None:
    pooled, attention, grads = _run(pool, x)
    compiled = torch.compile(pool, backend=backend, fullgraph=True)  # fullgraph: a graph break is an error
    c_pooled, c_attention, c_grads = _run(compiled, x)
    tolerance = TOLERANCE[backend]
    torch.testing.assert_close(c_pooled, pooled, **tolerance)
    torch.testing.assert_close(c_attention, attention, **tolerance)
    assert c_grads.keys() == grads.keys()
    for name in grads:
        torch.testing.assert_close(c_grads[name], grads[name], **tolerance, msg=lambda m, n=name: f"grad {n}: {m}")


@pytest.mark.parametrize("layout", SHAPES)
@pytest.mark.parametrize("name", list_pools())
def test_every_pool_compiles_as_one_graph(name, layout):
    torch.manual_seed(1)
    assert_compiled_matches_eager(_pool(name), torch.randn(SHAPES[layout]), "aot_eager")


@pytest.mark.parametrize("layout", SHAPES)
@pytest.mark.parametrize("min_over", ["sample", "batch", "channel"])
def test_simpool_every_min_over_compiles(min_over, layout):
    torch.manual_seed(1)
    pool = SimPool(DIM, gamma=2.0 if layout == "map" else 1.25, min_over=min_over).eval()
    assert_compiled_matches_eager(pool, torch.randn(SHAPES[layout]), "aot_eager")


@pytest.mark.parametrize("layout", SHAPES)
def test_multi_head_simpool_compiles(layout):
    # each head scores with all C channels of LN(X): a per-head view of D channels fails to trace for num_heads > 1
    torch.manual_seed(1)
    pool = SimPool(DIM, num_heads=4, gamma=1.25, qkv_bias=True).eval()
    assert_compiled_matches_eager(pool, torch.randn(SHAPES[layout]), "aot_eager")


@pytest.mark.parametrize("name", ["kmeans", "slot"])
def test_random_pools_compile_in_training_mode(name):
    # training draws from the global random state, inside the graph, on the input's device
    pool = create_pool(name, DIM, iterations=1).train()  # one iteration: the noise is what is tested
    x = torch.randn(SHAPES["map"], requires_grad=True)
    pooled = torch.compile(pool, backend="aot_eager", fullgraph=True)(x)
    pooled.square().sum().backward()
    assert pooled.shape == (2, 3, DIM) and torch.isfinite(x.grad).all()


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [
        ("simpool", dict(gamma=1.25, min_over="batch"), "map"),  # exp/log power, the min's scatter
        ("gem", {}, "tokens"),
        ("ep", {}, "map"),  # the probing heads' shared query attention, 4 queries
    ],
    ids=lambda case: f"{case[0]}-{case[2]}-{'-'.join(map(str, case[1].values()))}",
)
def test_inductor_matches_eager(case):
    name, kwargs, layout = case
    torch.manual_seed(1)
    assert_compiled_matches_eager(_pool(name, **kwargs), torch.randn(SHAPES[layout]), "inductor")


@pytest.mark.parametrize("model_name", sorted(TINY_MODELS))
def test_models_with_simpool_have_no_graph_break(model_name):
    torch.manual_seed(0)
    model = create_model(model_name, pool="simpool", num_classes=3, **TINY_MODELS[model_name]).eval()
    images = torch.randn(2, 3, 32, 32)
    explanation = torch._dynamo.explain(model)(images)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
