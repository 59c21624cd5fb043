"""Every attention map a model has, at any input resolution, from a checkpoint on disk."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from ..models import attention_maps, cls_attention_all, create_model, load_checkpoint, pool_slot
from ..models.attention import no_map_message
from ..models.checkpoint import read_state_dict
from ..models.families import family_of_name

AUTO_POOLS = ("simpool", "default")  # tried in order by pool="auto"


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


def set_image_size(model: nn.Module, image_size: int) -> nn.Module:
    """Let ``model`` take ``image_size x image_size`` inputs; returns it.

    ViTs resample their position embeddings with timm's ``set_input_size`` (bicubic, as DINO and the
    paper's 896x896 figures do: a 56x56 map with 16x16 patches). CNNs take any size as they are.
    """
    if isinstance(model, VisionTransformer):
        model.set_input_size(img_size=(image_size, image_size))
    return model


def load_model(
    model_name: str,
    checkpoint: str | Path,
    pool: str = "auto",
    pool_kwargs: dict | None = None,
    num_classes: int | None = None,
    **timm_kwargs,
) -> nn.Module:
    """A model built to fit ``checkpoint`` and loaded from it, in eval mode.

    What the checkpoint tells is inferred: ``num_classes`` from the classifier's weight, ``pool``
    (``"auto"``: the first of ``simpool``, ``default`` whose parameter names match the checkpoint)
    and, for ViTs, ``img_size`` from the length of ``pos_embed``. Everything else (``patch_size``,
    ``embed_dim``, ``depth``, ``num_heads``, ``in_chans``...) comes from ``model_name`` or ``timm_kwargs``.

    Raises:
        ValueError: no candidate pool fits the checkpoint, or a tensor's shape differs.
    """
    state = read_state_dict(checkpoint)
    family = family_of_name(model_name)
    if num_classes is None:
        classifier = state.get(f"{family.classifier_path}.weight")
        num_classes = 0 if classifier is None else classifier.shape[0]
    candidates = AUTO_POOLS if pool == "auto" else (pool,)
    model = None
    for candidate in candidates:
        kwargs = dict(pool_kwargs or {}) if candidate != "default" else {}
        built = create_model(model_name, pool=candidate, pool_kwargs=kwargs, num_classes=num_classes, **timm_kwargs)
        if set(built.state_dict()) == set(state) or len(candidates) == 1:
            model = built
            break
    if model is None:
        raise ValueError(f"{checkpoint}: its parameter names fit none of the pools {candidates}; pass pool=...")
    if isinstance(model, VisionTransformer) and "pos_embed" in state and "img_size" not in timm_kwargs:
        if state["pos_embed"].shape[1] != model.pos_embed.shape[1]:  # another token count (not width)
            prefix = model.pos_embed.shape[1] - model.patch_embed.num_patches  # tokens with a position slot
            side = math.isqrt(state["pos_embed"].shape[1] - prefix)
            set_image_size(model, side * model.patch_embed.patch_size[0])  # the checkpoint's pos_embed then fits
    load_checkpoint(model, checkpoint)
    return model.eval()


def input_channels(model: nn.Module) -> int:
    """Channels of the model's first convolution (3 for RGB models, 1 for the demo's ViT)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    raise ValueError(f"{type(model).__name__} has no convolution to read its input channels from")
