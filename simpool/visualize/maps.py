"""Every attention map a model has, at any input resolution.

Models are built and loaded by :func:`simpool.models.loading.load_model` (``pool="auto"`` infers the pool, and a
ViT's input size, from the checkpoint); :func:`~simpool.models.loading.set_image_size` changes the input size.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models import attention_maps, cls_attention_all, pool_slot
from ..models.attention import no_map_message


def map_sources(model: nn.Module) -> dict[str, dict]:
    """Every map that applies to ``model``, by name, as keyword arguments of ``attention_maps``.

    ``pool``: the pool's attention (SimPool's ``a``, Eq. 15) when the model has a simpool pool, for
    ViTs and CNNs alike. For ViTs with a CLS token: ``cls`` (mean over heads of the last block's CLS
    attention, the paper's baseline), ``cls_head1..H`` (each head of the last block) and
    ``cls_block1..L`` (the mean over heads of each block, Figure C7). The first entry is the model's
    main map.

    Raises:
        ValueError: the model has neither a simpool pool nor a CLS token (e.g. a GAP baseline).
    """
    sources: dict[str, dict] = {}
    if pool_slot(model) is not None:
        sources["pool"] = {"source": "pool"}
    if getattr(model, "has_class_token", False):
        sources["cls"] = {"source": "cls"}
        for head in range(model.blocks[-1].attn.num_heads):
            sources[f"cls_head{head + 1}"] = {"source": "cls_head", "block": -1, "head": head}
        for block in range(len(model.blocks)):
            sources[f"cls_block{block + 1}"] = {"source": "cls_block", "block": block}
    if not sources:
        raise ValueError(no_map_message(model))
    return sources


def compute_maps(model: nn.Module, images: torch.Tensor, names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Maps ``{name: (B, h, w)}`` of ``images`` ``(B, C, H, W)`` for the sources of :func:`map_sources`."""
    sources = map_sources(model)
    names = list(sources) if names is None else names
    unknown = sorted(set(names) - set(sources))
    if unknown:
        raise ValueError(f"unknown maps {unknown} for this model; it has: {', '.join(sources)}")
    maps = {}
    if any(sources[name]["source"] != "pool" for name in names):  # every CLS map from one forward pass
        cls = cls_attention_all(model, images).float().cpu()  # (B, L, heads, h, w)
    for name in names:
        source = sources[name]
        if source["source"] == "pool":
            maps[name] = attention_maps(model, images, source="pool").float().cpu()
        elif source["source"] == "cls_head":
            maps[name] = cls[:, source["block"], source["head"]]
        else:  # cls (the last block) or cls_block: mean over heads
            maps[name] = cls[:, source.get("block", -1)].mean(dim=1)
    return maps


def input_channels(model: nn.Module) -> int:
    """Channels of the model's first convolution (3 for RGB models, 1 for the demo's ViT)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    raise ValueError(f"{type(model).__name__} has no convolution to read its input channels from")
