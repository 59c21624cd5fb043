"""Parameters and multiply-accumulates of a model at an input size, baseline and any pool (paper Table 8).

MACs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2, the unit timm and the
paper quote). Two conventions:

- ``gmacs``: everything, including the attention inside ViT blocks. On CPU torch 2.14 counts
  nothing for its fused attention kernel, so its cost is mapped in explicitly here.
- ``gmacs_paper``: the paper's convention, which did not count the attention of the blocks, with
  SimPool's cost taken by its direct formula (``K = W_K LN(X)`` materialised), as in Table 8.

Element-wise work (norms, activations, softmax) is not counted in either, as in both counters.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from ..models import create_model, pool_input, pool_slot
from ..models.loading import set_image_size
from ..pooling import SimPool, simpool_direct

aten = torch.ops.aten
# FlopCounterMode looks a counted op up by its overload packet (and decomposes ops it does not know)
_SDPA_OPS = [
    op
    for name in (
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention",
    )
    if hasattr(aten, name)
    for op in (getattr(aten, name), getattr(aten, name).default)
]


def _sdpa_macs(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _no_macs(*args, **kwargs) -> int:
    return 0


def count_flops(fn, *inputs, count_attention: bool = True) -> int:
    """FLOPs of ``fn(*inputs)`` (2 per multiply-accumulate), fused attention counted or not."""
    formula = _sdpa_macs if count_attention else _no_macs
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=dict.fromkeys(_SDPA_OPS, formula)) as counter:
        fn(*inputs)
    return counter.get_total_flops()


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _use_fused_attention(model: torch.nn.Module) -> None:
    # The fused kernel is one op that the counter can recognise (and skip, for the paper convention).
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = True


def resources(
    model_name: str,
    pool: str = "default",
    image_size: int = 224,
    num_classes: int = 1000,
    pool_kwargs: dict | None = None,
) -> dict:
    """Parameters (millions) and GMACs of ``model_name`` with ``pool`` at ``image_size``.

    Returns:
        ``{"model", "pool", "image_size", "params_m", "gmacs", "gmacs_paper", "pool_gmacs", "pool_gmacs_direct"}``;
        the last two are the pool's own cost, by our computation and by the direct formula
        (SimPool only; None otherwise).
    """
    model = create_model(model_name, pool=pool, pool_kwargs=pool_kwargs, num_classes=num_classes).eval()
    set_image_size(model, image_size)  # a ViT's position embedding for image_size; a CNN takes any size
    _use_fused_attention(model)
    images = torch.zeros(1, 3, image_size, image_size)
    flops = count_flops(model, images, count_attention=True)
    flops_paper = count_flops(model, images, count_attention=False)
    pool_macs = direct_macs = None
    slot = pool_slot(model)
    if slot is not None and isinstance(slot.pool, SimPool):
        with torch.no_grad():
            features = pool_input(model, images)
        pool_flops = count_flops(slot.pool, features)
        direct_flops = count_flops(simpool_direct, slot.pool, features)
        flops_paper += direct_flops - pool_flops
        pool_macs, direct_macs = pool_flops / 2e9, direct_flops / 2e9
    return {
        "model": model_name,
        "pool": pool,
        "image_size": image_size,
        "params_m": count_parameters(model) / 1e6,
        "gmacs": flops / 2e9,
        "gmacs_paper": flops_paper / 2e9,
        "pool_gmacs": pool_macs,
        "pool_gmacs_direct": direct_macs,
    }


def format_table(rows: list[dict]) -> str:
    header = (
        f"{'model':<24} {'pool':<10} {'params (M)':>10} {'GMACs':>8} {'GMACs (paper conv.)':>20} "
        f"{'pool GMACs':>11} {'pool GMACs direct':>18}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        pool_cost = "" if r["pool_gmacs"] is None else f"{r['pool_gmacs']:.4f}"
        direct = "" if r["pool_gmacs_direct"] is None else f"{r['pool_gmacs_direct']:.4f}"
        lines.append(
            f"{r['model']:<24} {r['pool']:<10} {r['params_m']:>10.2f} {r['gmacs']:>8.3f} "
            f"{r['gmacs_paper']:>20.3f} {pool_cost:>11} {direct:>18}"
        )
    return "\n".join(lines)


def resources_table(
    models: list[str], pools: list[str], image_size: int = 224, num_classes: int = 1000, gamma: float | None = None
) -> list[dict]:
    """:func:`resources` of every model with every pool; ``gamma`` (None: the family's) goes to SimPool only."""
    pool_kwargs = None if gamma is None else {"gamma": gamma}
    return [
        resources(name, pool, image_size, num_classes, pool_kwargs if pool == "simpool" else None)
        for name in models
        for pool in pools
    ]
