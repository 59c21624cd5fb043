"""One way to build a model and load its weights, for every command: ``load_model``.

The weights may be ours (``simpool train``: safetensors), an official SimPool release (any layout of
``layouts.py``) or a plain timm state dict; loading is strict, and a mismatch names the missing and the
unexpected keys. What the checkpoint tells is read from it rather than asked for: the number of classes
(from its classifier, so that a classifier checkpoint builds its classifier and a backbone checkpoint, a
DINO teacher, builds none), the pool with ``pool="auto"``, and a ViT's input size (from its position
embedding).
"""

from __future__ import annotations

import math
import os
from functools import partial

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from .checkpoint import classifier_keys, load_state, read_state_dict
from .factory import create_model
from .layouts import convert_state_dict

AUTO_POOLS = ("simpool", "default")  # tried in order by pool="auto": the first whose parameter names fit


def num_classes_in(state: dict[str, torch.Tensor], model: nn.Module) -> int:
    """The classifier width the checkpoint ``state`` holds for ``model``'s architecture (0: no classifier)."""
    weights = [name for name in classifier_keys(model) if name.endswith("weight") and name in state]
    return int(state[weights[0]].shape[0]) if weights else 0


def set_image_size(model: nn.Module, image_size: int) -> nn.Module:
    """Let ``model`` take ``image_size x image_size`` inputs; returns it.

    ViTs resample their position embeddings with timm's ``set_input_size`` (bicubic, as DINO and the
    paper's 896x896 figures do: a 56x56 map with 16x16 patches). CNNs take any size as they are.
    """
    if isinstance(model, VisionTransformer):
        model.set_input_size(img_size=(image_size, image_size))
    return model


def load_model(
    name: str,
    pool: str = "simpool",
    pool_kwargs: dict | None = None,
    model_kwargs: dict | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_key: str | None = None,
    num_classes: int | None = None,
) -> nn.Module:
    """``create_model(name, pool, pool_kwargs, num_classes, **model_kwargs)`` with ``checkpoint`` loaded strictly,
    in eval mode.

    Args:
        pool: a pool name, ``"default"`` (timm's own pooling), or ``"auto"``: the first of ``simpool``,
            ``default`` whose parameter names match the checkpoint's.
        num_classes: the classifier's outputs; None: as many as the checkpoint's classifier has (0 when it has
            none, or without a checkpoint).
        model_kwargs: timm's arguments. Without ``img_size`` a ViT takes the input size its checkpoint's
            position embedding was made for.

    Raises:
        ValueError: the checkpoint does not fit (its missing and unexpected keys named), a tensor's shape
            differs (named with both shapes), or no pool of ``"auto"`` fits.
    """
    pool_kwargs, model_kwargs = dict(pool_kwargs or {}), dict(model_kwargs or {})
    if checkpoint is None:
        pool = AUTO_POOLS[0] if pool == "auto" else pool
        model = create_model(name, pool=pool, pool_kwargs=pool_kwargs, num_classes=num_classes or 0, **model_kwargs)
        return model.eval()
    state, _, notices = convert_state_dict(read_state_dict(checkpoint, checkpoint_key))
    candidates = AUTO_POOLS if pool == "auto" else (pool,)
    for candidate in candidates:
        build = partial(create_model, name, pool=candidate, pool_kwargs=pool_kwargs, **model_kwargs)
        model = build(num_classes=2 if num_classes is None else num_classes)  # 2: a classifier to find in state
        if len(candidates) == 1 or _names_fit(model, state):
            break
    else:
        raise ValueError(f"{checkpoint}: its parameter names fit none of the pools {candidates}; name the pool")
    if num_classes is None and num_classes_in(state, model) != 2:
        model = build(num_classes=num_classes_in(state, model))
    if "img_size" not in model_kwargs:
        _fit_image_size(model, state)
    load_state(model, state, notices=notices, source=str(checkpoint), strict=True)
    return model.eval()


def _names_fit(model: nn.Module, state: dict[str, torch.Tensor]) -> bool:
    """Whether ``state`` has ``model``'s parameter names, the classifier's aside (it may have none)."""
    head = set(classifier_keys(model))
    return set(model.state_dict()) - head == set(state) - head


def _fit_image_size(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """A ViT set to the input size of the checkpoint's position embedding, when its token count differs."""
    if not isinstance(model, VisionTransformer) or "pos_embed" not in state:
        return
    tokens = state["pos_embed"].shape[1]  # (1, tokens, C)
    if tokens != model.pos_embed.shape[1]:
        prefix = model.pos_embed.shape[1] - model.patch_embed.num_patches  # tokens with a position slot
        side = math.isqrt(tokens - prefix)  # patches per side, a square grid
        set_image_size(model, side * model.patch_embed.patch_size[0])
