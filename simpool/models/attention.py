"""``attention_maps``: where a model looks, from its pool or from a ViT's CLS token."""

from __future__ import annotations

import torch
from torch import nn

from .factory import pool_slot

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
    with torch.no_grad():
        if source == "pool":
            return _pool_attention(model, slot, images)
        if source == "cls_head" and head is None:
            raise ValueError("source='cls_head' needs a head index")
        return _cls_attention(model, images, block if source != "cls" else -1, head if source == "cls_head" else None)


def _grid(model: nn.Module, images: torch.Tensor) -> tuple[int, int]:
    return tuple(model.patch_embed.dynamic_feat_size(tuple(images.shape[-2:])))


def _pool_attention(model: nn.Module, slot, images: torch.Tensor) -> torch.Tensor:
    if slot is None:
        raise ValueError(f"{type(model).__name__} has timm's own pooling, which has no attention; use source='cls'")
    slot.record_attention = True
    try:
        model.forward_head(model.forward_features(images), pre_logits=True)
        attention = slot.attention
    finally:
        slot.record_attention, slot.attention = False, None
    B = images.shape[0]
    if hasattr(model, "patch_embed"):  # tokens: (B, N) or (B, M, N)
        h, w = _grid(model, images)
        attention = attention.reshape(B, -1, h, w)  # (B, M, h, w)
    elif attention.ndim == 3:  # a single map: (B, H, W)
        attention = attention[:, None]  # (B, 1, H, W)
    return attention.mean(dim=1)  # over heads or vectors: (B, h, w)


def _cls_attention(model: nn.Module, images: torch.Tensor, block: int, head: int | None) -> torch.Tensor:
    if not getattr(model, "has_class_token", False):
        raise ValueError(f"{type(model).__name__} has no CLS token; use source='pool'")
    attn = model.blocks[block].attn
    captured = {}
    handle = attn.register_forward_pre_hook(lambda module, args: captured.setdefault("x", args[0]))
    try:
        model.forward_features(images)
    finally:
        handle.remove()
    x = captured["x"]  # the block's normalised input: (B, T, C), T = prefix + patches
    B, T, C = x.shape
    qkv = attn.qkv(x).reshape(B, T, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)  # (3, B, heads, T, D)
    q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])  # (B, heads, T, D)
    weights = ((q[:, :, :1] * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # CLS row: (B, heads, 1, T)
    weights = weights[:, :, 0, model.num_prefix_tokens :]  # to the patches: (B, heads, N)
    weights = weights[:, head] if head is not None else weights.mean(dim=1)  # (B, N)
    h, w = _grid(model, images)
    return weights.reshape(B, h, w)  # (B, h, w)
