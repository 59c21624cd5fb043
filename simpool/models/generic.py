"""The generic pool swap: any timm model whose ``forward_features`` gives a map or tokens.

Built on timm's model contract only (``forward_features``, ``forward_head``, ``num_features``,
``num_prefix_tokens``), not on where each family keeps its pooling:

1. ``forward_features(x)`` is timm's: a map ``(B, C, H, W)``, a channels-last map ``(B, H, W, C)``
   (Swin-like) or tokens ``(B, P + N, C)`` whose first ``P = num_prefix_tokens`` are CLS,
   distillation or register tokens.
2. :class:`FeaturePool` (``model.feature_pool``) brings those features to the pool's layout (a map
   ``(B, C, H, W)``, or the ``N`` patch tokens without the prefix) and pools them to ``u`` ``(B, C)``.
3. timm's own ``forward_head`` then runs on ``u`` laid out as the features with a single location
   (``(B, C, 1, 1)``, ``(B, 1, 1, C)`` or ``P + 1`` copies of ``u``), where its own pooling (average,
   max, token) is the identity. So every layer timm applies after pooling stays, in timm's order:
   MobileNetV3's ``conv_head``, the LayerNorm and MLP of NormMlp heads (ConvNeXt, MaxViT), ViT-like
   ``fc_norm``, both heads of distilled models (DeiT, LeViT), VOLO's token-labelling head.

Pools with ``k > 1`` vectors run the head once per vector (the vectors folded into the batch) and a
class scores the maximum of its ``k`` logits, as for the official families.
"""

from __future__ import annotations

import types

import torch
from torch import nn

from .slot import PoolSlot

SLOT_NAME = "feature_pool"  # the attribute of the model that holds the FeaturePool


class FeaturePool(PoolSlot):
    """A pool over whatever ``forward_features`` returns: a map, a channels-last map or tokens.

    Args:
        pool: a simpool pool (``forward(x, return_attention=False)``).
        channels: the model's ``num_features``, which tells NCHW from NHWC maps.
        num_prefix_tokens: leading tokens (CLS, distillation, registers) kept out of the pool.
        channels_last: the model declares NHWC features (``output_fmt``), for maps whose shape cannot tell.

    Attributes:
        grid: ``(h, w)`` of the last map pooled while recording attention, None after tokens (their
            grid is the image's).
    """

    def __init__(self, pool: nn.Module, channels: int, num_prefix_tokens: int = 0, channels_last: bool = False):
        super().__init__(pool)
        self.channels = channels
        self.num_prefix_tokens = num_prefix_tokens
        self.channels_last = channels_last
        self.grid: tuple[int, int] | None = None

    def pool_input(self, features: torch.Tensor) -> torch.Tensor:
        """What the pool sees: a map ``(B, C, H, W)`` or the patch tokens ``(B, N, C)``."""
        if not isinstance(features, torch.Tensor):
            raise ValueError(f"forward_features returns a {type(features).__name__}, not one feature tensor")
        C = self.channels
        if features.ndim == 4:
            nchw, nhwc = features.shape[1] == C, features.shape[-1] == C
            if nhwc and (self.channels_last or not nchw):
                return features.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
            if nchw:
                return features  # (B, C, H, W)
        elif features.ndim == 3 and features.shape[-1] == C:
            tokens = features[:, self.num_prefix_tokens :]  # (B, N, C): the prefix tokens stay out
            if tokens.shape[1] == 0:
                raise ValueError("forward_features returns only prefix tokens: features are not spatial")
            return tokens
        raise ValueError(f"forward_features returns {tuple(features.shape)}: not a map or tokens with {C} channels")

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.pool_input(features)  # (B, C, H, W) or (B, N, C)
        if self.record_attention:  # the map and its grid, for attention_maps
            self.grid = tuple(x.shape[-2:]) if x.ndim == 4 else None
            pooled, self.attention = self.pool(x, return_attention=True)
        else:
            pooled = self.pool(x)
        return pooled  # (B, C) or (B, k, C)

    def one_location(self, pooled: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """``pooled`` ``(B, C)`` laid out as ``features`` with a single location (plus the prefix tokens)."""
        B, C = pooled.shape
        if features.ndim == 3:  # every position holds u: token, average and max pooling all give u
            return pooled[:, None].expand(B, self.num_prefix_tokens + 1, C).contiguous()  # (B, P + 1, C)
        if features.shape[1] == C and not (self.channels_last and features.shape[-1] == C):
            return pooled[:, :, None, None]  # (B, C, 1, 1)
        return pooled[:, None, None, :]  # (B, 1, 1, C)


def install(model: nn.Module, pool: nn.Module) -> FeaturePool:
    """Put ``pool`` before timm's head of ``model``, in place (module docstring)."""
    for method in ("forward_features", "forward_head", "reset_classifier"):
        if not callable(getattr(type(model), method, None)):
            raise ValueError(f"{type(model).__name__} has no {method}(): not a timm classification model")
    existing = getattr(model, SLOT_NAME, None)
    if existing is not None and not isinstance(existing, FeaturePool):
        raise ValueError(f"{type(model).__name__} already has an attribute {SLOT_NAME!r}")
    channels_last = getattr(model, "output_fmt", "NCHW") == "NHWC" or (
        getattr(getattr(model, "head", None), "input_fmt", "NCHW") == "NHWC"
    )
    slot = FeaturePool(pool, model.num_features, num_prefix_tokens(model), channels_last)
    setattr(model, SLOT_NAME, slot)
    model.forward_head = types.MethodType(_forward_head, model)
    model.reset_classifier = types.MethodType(_reset_classifier, model)
    return slot


def num_prefix_tokens(model: nn.Module) -> int:
    """Leading tokens that are not patches: timm's ``num_prefix_tokens``, else the token parameters' count."""
    count = getattr(model, "num_prefix_tokens", None)
    if count is not None:
        return int(count)
    tokens = (getattr(model, name, None) for name in ("cls_token", "dist_token", "reg_token"))
    return sum(t.shape[-2] for t in tokens if isinstance(t, torch.Tensor) and t.ndim == 3)  # (1, P, C) each


def _forward_head(self: nn.Module, x: torch.Tensor, pre_logits: bool = False, **masks):
    """timm's ``forward_head`` after the simpool pool: pooled features, or logits.

    ``masks`` are the per-token arguments some heads take (NaFlex-style ``patch_valid``); the pool sees
    every token, so only None (all tokens valid, as for images) is accepted.
    """
    given = sorted(name for name, value in masks.items() if value is not None)
    if given:
        raise ValueError(f"a simpool pool takes every token: {given} are not supported")
    slot: FeaturePool = getattr(self, SLOT_NAME)
    pooled = slot(x)  # (B, C) or (B, k, C)
    B = pooled.shape[0]
    vectors = pooled.ndim == 3
    flat = pooled.flatten(0, 1) if vectors else pooled  # (B k, C): one head pass per vector
    out = type(self).forward_head(self, slot.one_location(flat, x), pre_logits=pre_logits)
    if not vectors:
        return out
    return _per_sample(out, B, pre_logits)


def _per_sample(out, B: int, pre_logits: bool):
    if isinstance(out, (tuple, list)):  # distilled training: (logits, distillation logits)
        return type(out)(_per_sample(o, B, pre_logits) for o in out)
    out = out.unflatten(0, (B, -1))  # (B, k, D)
    return out if pre_logits else out.amax(dim=1)  # a class scores its maximum logit: (B, classes)


def _reset_classifier(self: nn.Module, num_classes: int, global_pool: str | None = None, **kwargs) -> None:
    """timm's ``reset_classifier`` for a model with a simpool pool: a new classifier, the same pool."""
    if global_pool is not None:
        raise ValueError("this model's pool is a simpool pool: change it with simpool.replace_pool(model, pool)")
    type(self).reset_classifier(self, num_classes, **kwargs)
