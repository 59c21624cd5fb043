"""``create_model`` and ``replace_pool``: timm models whose final pooling is any simpool pool."""

from __future__ import annotations

import inspect
import re
import sys
import types
import warnings

import timm
import torch
from torch import nn

from ..pooling import create_pool
from ..utils import UnknownKeywordError
from . import generic
from .families import Family, default_gamma_of, family_of, family_of_name, get_path, init_generic_pool, install
from .slot import PoolSlot, max_over_vectors

DEFAULT_POOLS = ("default",)


def create_model(
    model_name: str,
    pool: str = "simpool",
    pool_kwargs: dict | None = None,
    num_classes: int = 1000,
    **timm_kwargs,
) -> nn.Module:
    """A timm model whose final pooling is the named simpool pool.

    Args:
        model_name: a timm model of a family of ``simpool.list_families()`` (``resnet50``,
            ``convnext_small``, ``vit_small_patch16_224``, ``efficientnet_b0``, ``swin_tiny_patch4_window7_224``...).
            ResNet, ConvNeXt and ViT/DeiT get the official wiring; the other families the generic
            one (``simpool/models/generic.py``): the pool on ``forward_features``, then timm's own head.
        pool: a name of ``simpool.list_pools()``, or ``"default"`` for timm's own pooling (GAP for
            CNNs, the CLS token for ViTs): the paper's baseline. Any other pool builds a ViT-like model
            without its CLS token and without the position-embedding slot for it when timm has the
            option (``class_token=False``); otherwise CLS, distillation and register tokens stay in
            the encoder, out of the pool.
        pool_kwargs: arguments of the pool. For ``"simpool"`` without ``gamma``, the paper's default
            of the family is used: 2 for CNNs, 1.25 for transformers (pass ``gamma=None`` for none).
        num_classes: classifier outputs; 0 for no classifier (``model(x)`` returns pooled features).
        **timm_kwargs: passed to ``timm.create_model`` (``pretrained``, ``img_size``, ``drop_path_rate``...).

    Raises:
        ValueError: an unknown pool, ``pool_kwargs`` with ``pool="default"`` (timm's pooling takes none), or a
            model of an unsupported family (the reason in the message).

    Example:
        >>> model = create_model("resnet18", pool="simpool", num_classes=10)
    """
    try:
        return _create_model(model_name, pool, pool_kwargs, num_classes, timm_kwargs)
    except TypeError as error:
        misspelt = misspelt_keyword(error)
        if misspelt is None:
            raise
        raise misspelt from None


_UNEXPECTED = re.compile(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'")


def misspelt_keyword(error: TypeError) -> UnknownKeywordError | None:
    """A one-line ``ValueError`` for a timm model's unexpected keyword (its keyword arguments), naming the word
    and the valid ones; None for another ``TypeError``. A pool's misspelt keyword is the pool registry's
    (:func:`simpool.pooling.create_pool`)."""
    match = _UNEXPECTED.search(str(error))
    if match is None:
        return None
    class_name, word = match.groups()
    owner = next(
        (
            getattr(module, class_name)
            for name, module in list(sys.modules.items())
            if name.startswith("timm.models") and isinstance(getattr(module, class_name, None), type)
        ),
        None,
    )
    if owner is None:
        return None
    valid = [name for name in inspect.signature(owner).parameters if name not in ("self", "args", "kwargs")]
    message = f"timm's {class_name} (model kwargs) takes no argument {word!r}; valid: {', '.join(valid)}"
    return UnknownKeywordError(message)


def _create_model(model_name: str, pool: str, pool_kwargs: dict | None, num_classes: int, timm_kwargs: dict):
    """:func:`create_model`'s body."""
    if pool in DEFAULT_POOLS:  # timm's own pooling: any timm model, supported family or not
        if pool_kwargs:
            raise ValueError(
                f"pool={pool!r} (timm's own pooling) takes no pool_kwargs, got {sorted(pool_kwargs)}: "
                "name a simpool pool, or leave them out"
            )
        if not timm.is_model(model_name):
            raise ValueError(f"unknown timm model {model_name!r}")
        return timm.create_model(model_name, num_classes=num_classes, **timm_kwargs)
    family = family_of_name(model_name)
    if family.generic:
        model = _build_generic(model_name, family, num_classes, timm_kwargs)
    else:
        clash = sorted(set(family.build_kwargs) & set(timm_kwargs))
        if clash:
            raise ValueError(f"{clash} are set by create_model for pool={pool!r}; remove them from the arguments")
        model = timm.create_model(model_name, num_classes=num_classes, **family.build_kwargs, **timm_kwargs)
    kwargs = dict(pool_kwargs or {})
    if pool == "simpool":
        gamma = family.default_gamma if family.default_gamma is not None else default_gamma_of(model)
        kwargs.setdefault("gamma", gamma)
    pool_module = create_pool(pool, model.num_features, **kwargs)
    if family.init_pool is not None:
        family.init_pool(pool_module)
    elif family.generic:
        init_generic_pool(model, pool_module)
    like = next(model.parameters())
    return _install_pool(model, pool_module.to(device=like.device, dtype=like.dtype))


def _build_generic(model_name: str, family: Family, num_classes: int, timm_kwargs: dict) -> nn.Module:
    """The timm model, without its CLS token when timm has the option and the caller did not choose."""
    if not set(family.build_kwargs) & set(timm_kwargs):
        try:
            return timm.create_model(model_name, num_classes=num_classes, **family.build_kwargs, **timm_kwargs)
        except TypeError as error:  # the model has no such option: it keeps its tokens
            if not any(key in str(error) for key in family.build_kwargs):
                raise
        except AssertionError:  # e.g. DeiT distilled: its head needs the CLS and distillation tokens
            pass
    return timm.create_model(model_name, num_classes=num_classes, **timm_kwargs)


def replace_pool(model: nn.Module, pool: nn.Module | str, **pool_kwargs) -> nn.Module:
    """Make ``pool`` the final pooling of an existing timm model, in place; returns the model.

    ``pool`` is a pool module or a registered name (built for ``model.num_features`` channels with
    ``pool_kwargs``). ``model.reset_classifier(num_classes)`` keeps the pool afterwards.
    On a ViT built with a CLS token the token stays in the encoder and the pool ignores it, and a
    ``UserWarning`` says so; build with ``create_model`` to have no CLS token at all.

    Raises:
        ValueError: a model of an unsupported family, or a pool whose width the head does not take.
    """
    if getattr(model, "cls_token", None) is not None:
        warnings.warn(
            f"replace_pool: {type(model).__name__} keeps its CLS token in the encoder (the pool ignores it); build "
            "it with simpool.create_model for a ViT without one, as the paper trains",
            stacklevel=2,
        )
    return _install_pool(model, pool, **pool_kwargs)


def _install_pool(model: nn.Module, pool: nn.Module | str, **pool_kwargs) -> nn.Module:
    """:func:`replace_pool` without its warning (``create_model`` chose which tokens the model keeps)."""
    family = family_of(model)
    if isinstance(pool, str):
        pool = create_pool(pool, model.num_features, **pool_kwargs)
    elif pool_kwargs:
        raise ValueError("pool_kwargs are only used with a pool name")
    out_features = getattr(pool, "out_features", model.num_features)
    if out_features != model.num_features:
        raise ValueError(
            f"{type(pool).__name__} gives {out_features} features but {type(model).__name__}'s head "
            f"expects {model.num_features}"
        )
    if family.generic:
        generic.install(model, pool)
        return model
    install(family, model, pool)
    _hook_classifier(family, model, pool)
    model.reset_classifier = types.MethodType(_reset_classifier, model)
    return model


def input_size_of(model: nn.Module) -> tuple[int, int, int]:
    """``(C, H, W)`` the model was built for: a ViT's patch embedding's, else its ``pretrained_cfg`` input size."""
    size = tuple(getattr(model, "pretrained_cfg", {}).get("input_size", (3, 224, 224)))
    patch_embed = getattr(model, "patch_embed", None)
    if getattr(patch_embed, "img_size", None) is not None:
        size = (size[0], *patch_embed.img_size)
    return size


def check_input_size(model: nn.Module, image_size: int, option: str = "the image size") -> None:
    """Refuse in one line an ``image_size`` that a model of fixed input size (a ViT built without
    ``dynamic_img_size``) does not take; CNNs and dynamic ViTs take any size.

    Raises:
        ValueError: ``"data.img_size 64 is not the 32-pixel input VisionTransformer was built for; ..."``.
    """
    patch_embed = getattr(model, "patch_embed", None)
    if patch_embed is None or not getattr(patch_embed, "strict_img_size", False):
        return
    height, width = patch_embed.img_size
    if (image_size, image_size) != (height, width):
        raise ValueError(
            f"{option} {image_size} is not the {height}x{width} input {type(model).__name__} was built for: "
            f"set them equal (timm's img_size), or build it with dynamic_img_size=true"
        )


def pool_slot(model: nn.Module) -> PoolSlot | None:
    """The slot holding the model's simpool pool, or None for a model with timm's own pooling."""
    for module in model.modules():
        if isinstance(module, PoolSlot):
            return module
    return None


def pool_input(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """What the model's simpool pool receives for ``images``: tokens ``(B, N, C)`` or a map ``(B, C, h, w)``.

    Captured by a pre-hook on the pool during a forward pass up to the pre-logits: the tokens
    have no prefix tokens, and channels-last maps are channels-first.
    """
    slot = pool_slot(model)
    if slot is None:
        raise ValueError(f"{type(model).__name__} has timm's own pooling: no simpool pool input")
    captured = {}
    handle = slot.pool.register_forward_pre_hook(lambda module, args: captured.setdefault("x", args[0]))
    try:
        model.forward_head(model.forward_features(images), pre_logits=True)
    finally:
        handle.remove()
    return captured["x"]


def _hook_classifier(family: Family, model: nn.Module, pool: nn.Module) -> None:
    classifier = get_path(model, family.classifier_path)
    if getattr(pool, "num_vectors", 1) > 1 and not getattr(classifier, "_simpool_max_over_vectors", False):
        classifier.register_forward_hook(max_over_vectors)
        classifier._simpool_max_over_vectors = True


def _reset_classifier(self: nn.Module, num_classes: int, global_pool: str | None = None, **kwargs) -> None:
    """timm's ``reset_classifier`` for a model with a simpool pool: a new classifier, the same pool."""
    if global_pool is not None:
        raise ValueError("this model's pool is a simpool pool: change it with simpool.replace_pool(model, pool)")
    family = family_of(self)
    slot = pool_slot(self)
    type(self).reset_classifier(self, num_classes, global_pool=family.reset_pool_arg, **kwargs)
    install(family, self, slot.pool)
    _hook_classifier(family, self, slot.pool)
