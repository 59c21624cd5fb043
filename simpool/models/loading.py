"""One way to build a model and load its weights, for every command: ``load_model``.

The weights may be ours (``simpool train``: safetensors), an official SimPool release (any layout of
``layouts.py``), a timm or Hugging Face ``model.safetensors``, or an original release that timm converts (DINOv2,
MAE, OpenAI CLIP: :func:`timm_filter`, timm's ``checkpoint_filter_fn`` of the model's family); loading is
strict, and a mismatch names the missing and the unexpected keys. What the checkpoint tells is read from it
rather than asked for: the number of classes (from its classifier, so that a classifier checkpoint builds its
classifier and a backbone checkpoint, a DINO teacher, builds none), the pool with ``pool="auto"``, and a ViT's
input size (from its position embedding).
"""

from __future__ import annotations

import math
import os
import sys
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
    paper's 896x896 figures do: a 56x56 map with 16x16 patches), and so does any other model with a patch
    embedding of another size and ``set_input_size`` (timm's Swin, EVA...). CNNs take any size as they are.
    """
    size = getattr(getattr(model, "patch_embed", None), "img_size", None)  # any other patch model timm can resize
    resizable = size is not None and tuple(size) != (image_size, image_size) and hasattr(model, "set_input_size")
    if isinstance(model, VisionTransformer) or resizable:
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
    raw, _, notices = convert_state_dict(read_state_dict(checkpoint, checkpoint_key))
    candidates = AUTO_POOLS if pool == "auto" else (pool,)
    for candidate in candidates:
        build = partial(create_model, name, pool=candidate, pool_kwargs=pool_kwargs, **model_kwargs)
        model = build(num_classes=2 if num_classes is None else num_classes)  # 2: a classifier to find in state
        if "img_size" not in model_kwargs:
            _fit_image_size(model, raw)
        state = timm_filter(model, raw, notices)  # an original release in timm's names (DINOv2, CLIP...)
        if len(candidates) == 1 or _names_fit(model, state):
            break
    else:
        raise ValueError(f"{checkpoint}: its parameter names fit none of the pools {candidates}; name the pool")
    if num_classes is None and num_classes_in(state, model) != 2:
        model = build(num_classes=num_classes_in(state, model))
        if "img_size" not in model_kwargs:
            _fit_image_size(model, state)
    failed = next((notice for notice in notices if notice.startswith(FILTER_FAILED)), None)
    source = f"{checkpoint} ({failed})" if failed else str(checkpoint)
    load_state(model, state, notices=[n for n in notices if n != failed], source=source, strict=True)
    return model.eval()


FILTER_FAILED = "not converted by timm's"  # the start of the notice of a filter that could not read the state


def timm_filter(model: nn.Module, state: dict[str, torch.Tensor], notices: list[str]) -> dict[str, torch.Tensor]:
    """``state`` through timm's own ``checkpoint_filter_fn`` for ``model``'s family when its names do not fit.

    The filter of ``timm.models.<family>`` is what ``timm.create_model(pretrained=True)`` applies to a release:
    it converts DINOv2's (drops ``mask_token``, renames SwiGLU ``w12``/``w3``), OpenAI CLIP's (``visual.*``) and
    OpenCLIP's layouts, reshapes linear patch embeddings and resamples position embeddings. A state that already
    fits (ours, a timm or Hugging Face ``model.safetensors``, MAE's release once ``read_state_dict`` took its
    ``model`` entry) is left as it is. A line saying so joins ``notices``.

    Where the filter cannot read the state (a key it needs is missing, a tensor cannot be reshaped: a broken
    release, or simply a checkpoint of another pool), the state is left as it is and a line naming the filter and
    its error joins ``notices``: :func:`load_model` puts it in the mismatch it then reports.
    """
    own = set(model.state_dict())
    head = set(classifier_keys(model))
    if set(state) - head == own - head:
        return state
    family = sys.modules.get(type(model).__module__)
    convert = getattr(family, "checkpoint_filter_fn", None)
    if convert is None:
        return state
    try:
        converted = convert(dict(state), model)
    except (KeyError, IndexError, RuntimeError, ValueError) as error:  # a state it cannot read; other errors are bugs
        reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        notices.append(f"{FILTER_FAILED} {family.__name__}.checkpoint_filter_fn: {reason}")
        return state
    if set(converted) - head != own - head:
        return state
    if f"converted by timm's {family.__name__}.checkpoint_filter_fn" not in notices:
        notices.append(f"converted by timm's {family.__name__}.checkpoint_filter_fn")
    return converted


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
