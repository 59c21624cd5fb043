"""``attention_maps``: where a model looks, from its pool or from a ViT's CLS token."""

from __future__ import annotations

import math

import torch
from torch import nn

from .factory import pool_slot
from .generic import FeaturePool

SOURCES = ("auto", "pool", "cls", "cls_block", "cls_head")


def attention_maps(
    model: nn.Module,
    images: torch.Tensor,
    source: str = "auto",
    block: int = -1,
    head: int | None = None,
) -> torch.Tensor:
    """Attention maps ``(B, h, w)`` on the model's feature grid, computed without gradients.

    Args:
        model: a model from ``create_model``/``replace_pool``, or a timm ViT with a CLS token.
        images: ``(B, 3, H, W)``.
        source: ``"pool"``: the pool's attention (SimPool's ``a``), averaged over heads or vectors;
            ``"cls"``: the CLS token's attention to the patches in the last block, averaged over
            heads (the paper's baseline); ``"cls_block"``: the same in ``block``; ``"cls_head"``:
            one ``head`` of ``block``; ``"auto"``: the pool's when it has one, else the CLS token's.
        block: block index for ``"cls_block"``/``"cls_head"``.
        head: head index for ``"cls_head"``.

    Raises:
        ValueError: an unknown source, or one the model does not have.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown attention source {source!r}; valid sources: {', '.join(SOURCES)}")
    slot = pool_slot(model)
    if source == "auto":
        source = "pool" if slot is not None else "cls"
    if slot is None and not getattr(model, "has_class_token", False):
        raise ValueError(no_map_message(model))
    with torch.no_grad():
        if source == "pool":
            return _pool_attention(model, slot, images)
        if source == "cls_head" and head is None:
            raise ValueError("source='cls_head' needs a head index")
        return _cls_attention(model, images, block if source != "cls" else -1, head if source == "cls_head" else None)


def _grid(model: nn.Module, images: torch.Tensor) -> tuple[int, int]:
    return tuple(model.patch_embed.dynamic_feat_size(tuple(images.shape[-2:])))


def _pool_attention(model: nn.Module, slot, images: torch.Tensor) -> torch.Tensor:
    if slot is None:  # a CLS token then (checked by attention_maps): its attention is the map
        raise ValueError(
            f"{_model_name(model)} with pool 'default' (timm's CLS token) has no pool attention; "
            "use source='cls' or 'auto'"
        )
    slot.record_attention = True
    try:
        model.forward_head(model.forward_features(images), pre_logits=True)
        attention = slot.attention
    finally:
        slot.record_attention, slot.attention = False, None
    B = images.shape[0]
    if isinstance(slot, FeaturePool):  # the generic wiring: a map (slot.grid) or patch tokens
        h, w = slot.grid or token_grid(attention.shape[-1], tuple(images.shape[-2:]))
        attention = attention.reshape(B, -1, h, w)  # (B, M, h, w)
    elif hasattr(model, "patch_embed"):  # tokens: (B, N) or (B, M, N)
        h, w = _grid(model, images)
        attention = attention.reshape(B, -1, h, w)  # (B, M, h, w)
    elif attention.ndim == 3:  # a single map: (B, H, W)
        attention = attention[:, None]  # (B, 1, H, W)
    return attention.mean(dim=1)  # over heads or vectors: (B, h, w)


def _model_name(model: nn.Module) -> str:
    """timm's architecture name (``resnet18``), else the class name."""
    config = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    return config.get("architecture") or type(model).__name__


def no_map_message(model: nn.Module) -> str:
    """The message for a model with timm's own pooling and no CLS token: no source has a map."""
    how = getattr(model, "global_pool", None)
    how = getattr(how, "pool_type", how)  # timm's SelectAdaptivePool2d, or a ViT's string
    kind = {"avg": "GAP", "max": "global max pooling", "avgmax": "GAP and max", "catavgmax": "GAP and max"}.get(
        how if isinstance(how, str) else "", "global pooling"
    )
    return (
        f"{_model_name(model)} with pool 'default' (timm's {kind}) has no attention map: "
        "build it with a pool that has one, e.g. pool='simpool'"
    )


def token_grid(num_tokens: int, image_hw: tuple[int, int]) -> tuple[int, int]:
    """The grid ``(h, w)`` with ``h w = num_tokens`` whose aspect ratio is closest to the image's."""
    aspect = math.log(image_hw[0] / image_hw[1])
    sides = [(h, num_tokens // h) for h in range(1, num_tokens + 1) if num_tokens % h == 0]
    return min(sides, key=lambda hw: abs(math.log(hw[0] / hw[1]) - aspect))


def cls_attention_all(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The CLS token's attention to the patches in every block and head, in one forward pass.

    Returns:
        ``(B, L, heads, h, w)`` for a ViT with ``L`` blocks; ``attention_maps(..., "cls_block", block=j)``
        is ``[:, j].mean(2)`` and ``"cls_head"`` is ``[:, block, head]``.
    """
    if not getattr(model, "has_class_token", False):
        if pool_slot(model) is None:
            raise ValueError(no_map_message(model))
        raise ValueError(f"{_model_name(model)} has no CLS token; use source='pool' or 'auto' (its pool's attention)")
    with torch.no_grad():
        rows = _cls_rows(model, images, range(len(model.blocks)))  # L x (B, heads, N)
    h, w = _grid(model, images)
    return torch.stack(rows, dim=1).unflatten(-1, (h, w))  # (B, L, heads, N) -> (B, L, heads, h, w)


def _cls_rows(model: nn.Module, images: torch.Tensor, blocks) -> list[torch.Tensor]:
    """The CLS rows of the attention of ``blocks``, to the patches: one ``(B, heads, N)`` per block."""
    captured: dict[int, torch.Tensor] = {}
    handles = [
        model.blocks[i].attn.register_forward_pre_hook(lambda module, args, i=i: captured.setdefault(i, args[0]))
        for i in blocks
    ]
    try:
        model.forward_features(images)
    finally:
        for handle in handles:
            handle.remove()
    rows = []
    for i in blocks:
        attn, x = model.blocks[i].attn, captured[i]  # the block's normalised input: (B, T, C), T = prefix + N
        B, T, C = x.shape
        qkv = attn.qkv(x).reshape(B, T, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)  # (3, B, heads, T, D)
        q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])  # (B, heads, T, D)
        weights = ((q[:, :, :1] * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # CLS row: (B, heads, 1, T)
        rows.append(weights[:, :, 0, model.num_prefix_tokens :])  # to the patches: (B, heads, N)
    return rows


def _cls_attention(model: nn.Module, images: torch.Tensor, block: int, head: int | None) -> torch.Tensor:
    if not getattr(model, "has_class_token", False):
        if pool_slot(model) is None:
            raise ValueError(no_map_message(model))
        raise ValueError(f"{_model_name(model)} has no CLS token; use source='pool' or 'auto' (its pool's attention)")
    (weights,) = _cls_rows(model, images, [block])  # (B, heads, N)
    weights = weights[:, head] if head is not None else weights.mean(dim=1)  # (B, N)
    h, w = _grid(model, images)
    return weights.reshape(images.shape[0], h, w)  # (B, h, w)
