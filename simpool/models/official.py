"""The official SimPool checkpoints: their key layouts and models that reproduce their forward passes.

The authors released supervised checkpoints from their timm fork and self-supervised checkpoints from
their DINO fork (docs/checkpoints.md, "The official code"). Their SimPool module names its parameters
``norm_patches``, ``wq``, ``wk`` (and ``beta``); ours uses timm's ``norm``, ``q``, ``k``. Each
*layout* below renames one family of files to the keys of the model that
:func:`create_official_model` builds; each *preset* builds that model with the official wiring:

========================  =====================================================  ===================
setup                     official forward                                       our wiring
========================  =====================================================  ===================
supervised ViT (fork)     blocks -> norm -> SimPool -> head                      ``fc_norm`` Identity
DINO ViT                  blocks -> SimPool -> norm (pos_embed always resampled)  ``norm`` Identity
ResNet (both)             layer4 -> SimPool -> fc                                as ``create_model``
ConvNeXt (both)           stages -> SimPool -> LayerNorm -> fc                   as ``create_model``
========================  =====================================================  ===================

Every official SimPool takes one minimum over the whole batch (``min_over="batch"``), uses
LayerNorm epsilon 1e-6 and one head.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_state, read_state_dict
from .factory import create_model
from .layouts import convert_state_dict

# ----------------------------------------------------------------------------------------------
# Wiring: the order of norms around the pool, and the DINO ViT's position embedding
# ----------------------------------------------------------------------------------------------


def dino_pos_embed(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The DINO fork's ``interpolate_pos_encoding`` without a CLS token: always resampled.

    The official code compares ``N - 1`` tokens with the ``N`` position embeddings, so it always
    resizes the ``s x s`` grid with bicubic ``scale_factor = (H + 0.1) / s`` (not the identity even
    at the training size); reproduced here because the released ViT weights were trained with it.
    """
    if x.ndim == 4:  # dynamic_img_size: (B, H, W, C)
        B, H, W, C = x.shape  # batch, grid height, grid width, channels
        x = x.reshape(B, H * W, C)  # (B, N, C)
    else:
        H, W = self.patch_embed.grid_size
        C = x.shape[-1]
    side = int(math.sqrt(self.pos_embed.shape[1]))
    grid = self.pos_embed.reshape(1, side, side, C).permute(0, 3, 1, 2)  # (1, C, s, s)
    grid = F.interpolate(grid, scale_factor=((H + 0.1) / side, (W + 0.1) / side), mode="bicubic")  # (1, C, H, W)
    if grid.shape[-2:] != (H, W):
        raise ValueError(f"position embedding resampled to {tuple(grid.shape[-2:])}, expected {(H, W)}")
    return self.pos_drop(x + grid.permute(0, 2, 3, 1).reshape(1, H * W, C))  # (B, N, C)


def _wire_vit_supervised(model: nn.Module) -> None:
    model.fc_norm = nn.Identity()  # blocks -> norm -> SimPool -> head


def _wire_vit_dino(model: nn.Module) -> None:
    model.norm = nn.Identity()  # blocks -> SimPool -> fc_norm (the official backbone.norm)
    model._pos_embed = types.MethodType(dino_pos_embed, model)


WIRINGS: dict[str, Callable[[nn.Module], None]] = {
    "default": lambda model: None,
    "vit_supervised": _wire_vit_supervised,
    "vit_dino": _wire_vit_dino,
}


def _keep_wiring(model: nn.Module, wire: Callable[[nn.Module], None]) -> None:
    """Re-apply the official wiring after ``reset_classifier`` (which restores our default norms)."""
    reset = model.reset_classifier

    def reset_classifier(num_classes: int, *args, **kwargs) -> None:
        reset(num_classes, *args, **kwargs)
        wire(model)

    model.reset_classifier = reset_classifier


# ----------------------------------------------------------------------------------------------
# Presets: one per released checkpoint family
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfficialPreset:
    """A model matching one family of official checkpoints.

    Attributes:
        model_name: the timm architecture.
        wiring: a key of :data:`WIRINGS`.
        gamma: SimPool's gamma in the official run (None: no gamma); ``pool="default"`` if ``pool`` is False.
        use_beta: the official ``beta``; None follows the checkpoint when one is given.
        num_classes: 1000 for supervised classifiers, 0 for DINO backbones.
        files: the released files (Hugging Face ``billpsomas/<repo>``) this preset loads.
        pool: False for the paper's baselines (timm's own pooling).
    """

    model_name: str
    wiring: str
    gamma: float | None
    use_beta: bool | None
    num_classes: int
    files: tuple[str, ...] = ()
    pool: bool = True


PRESETS: dict[str, OfficialPreset] = {
    "vit_small_supervised": OfficialPreset(
        "vit_small_patch16_224",
        "vit_supervised",
        1.25,
        None,
        1000,
        ("vits_supervised_simpool_ep100/vits_gem1.25_supervised_beta.pth.tar", "vits_supervised_simpool_ep300"),
    ),
    "vit_small_supervised_no_gamma": OfficialPreset(
        "vit_small_patch16_224", "vit_supervised", None, None, 1000, ("vits_supervised_simpool_no_gamma_ep100",)
    ),
    "resnet50_supervised": OfficialPreset(
        "resnet50", "default", 2.0, None, 1000, ("resnet50_supervised_simpool_ep100",)
    ),
    "convnext_small_supervised": OfficialPreset("convnext_small", "default", 2.0, None, 1000),
    "vit_small_dino": OfficialPreset(
        "vit_small_patch16_224", "vit_dino", 1.25, True, 0, ("vits_dino_simpool_ep100", "vits_dino_simpool_ep300")
    ),
    "vit_small_dino_no_gamma": OfficialPreset(
        "vit_small_patch16_224", "vit_dino", None, False, 0, ("vits_dino_simpool_no_gamma_ep100",)
    ),
    "resnet50_dino": OfficialPreset("resnet50", "default", 2.0, False, 0, ("resnet50_dino_simpool_ep100",)),
    "resnet50_dino_no_gamma": OfficialPreset(
        "resnet50", "default", None, False, 0, ("resnet50_dino_simpool_no_gamma_ep100",)
    ),
    "convnext_small_dino": OfficialPreset(
        "convnext_small", "default", 2.0, False, 0, ("convnext_small_dino_simpool_ep100",)
    ),
    "convnext_small_dino_no_gamma": OfficialPreset(
        "convnext_small", "default", None, False, 0, ("convnext_small_dino_simpool_no_gamma_ep100",)
    ),
    # the paper's baselines: timm's own pooling (CLS token for ViTs, GAP for CNNs)
    "vit_small_supervised_baseline": OfficialPreset(
        "vit_small_patch16_224", "default", None, None, 1000, ("vits_supervised_official_ep100",), pool=False
    ),
    "resnet50_supervised_baseline": OfficialPreset(
        "resnet50", "default", None, None, 1000, ("resnet50_supervised_official_ep100",), pool=False
    ),
    "vit_small_dino_baseline": OfficialPreset(
        "vit_small_patch16_224", "default", None, None, 0, ("vits_dino_official_ep100",), pool=False
    ),
    "resnet50_dino_baseline": OfficialPreset(
        "resnet50", "default", None, None, 0, ("resnet50_dino_official_ep100",), pool=False
    ),
    "convnext_small_dino_baseline": OfficialPreset(
        "convnext_small", "default", None, None, 0, ("convnext_small_dino_official_ep100",), pool=False
    ),
}


def list_official() -> list[str]:
    """Names of the official presets."""
    return sorted(PRESETS)


def build_official(
    model_name: str,
    wiring: str = "default",
    gamma: float | None = None,
    use_beta: bool = False,
    num_classes: int = 1000,
    pool: bool = True,
    **timm_kwargs,
) -> nn.Module:
    """A model wired as an official SimPool model, for any architecture of the supported families.

    Args:
        model_name: a timm ResNet, ConvNeXt or ViT name.
        wiring: ``"default"`` (ResNet, ConvNeXt: ``create_model``'s), ``"vit_supervised"`` (norm,
            SimPool, head) or ``"vit_dino"`` (SimPool, then LayerNorm; DINO's position embedding).
        gamma, use_beta: the official SimPool's arguments (``min_over="batch"``, eps 1e-6).
        num_classes: classifier outputs; 0 for a backbone.
        pool: False for timm's own pooling (the baselines).
        **timm_kwargs: passed to ``timm.create_model`` (``img_size``, ``depth``, ``layers``, ...).
    """
    if wiring not in WIRINGS:
        raise ValueError(f"unknown wiring {wiring!r}; wirings: {list(WIRINGS)}")
    if not pool:
        return create_model(model_name, pool="default", num_classes=num_classes, **timm_kwargs)
    pool_kwargs = {"gamma": gamma, "use_beta": use_beta, "min_over": "batch", "norm_eps": 1e-6}
    model = create_model(model_name, pool="simpool", pool_kwargs=pool_kwargs, num_classes=num_classes, **timm_kwargs)
    WIRINGS[wiring](model)
    _keep_wiring(model, WIRINGS[wiring])
    return model


def official_use_beta(preset: OfficialPreset, state: dict | None) -> bool:
    """Whether an official SimPool has ``beta``: with a gamma, as its checkpoint's keys say; else the preset's."""
    if state is not None and preset.gamma is not None:
        return any(k.endswith("pool.beta") for k in state)
    return bool(preset.use_beta)


def create_official_model(
    name: str,
    checkpoint: str | None = None,
    key: str | None = None,
    num_classes: int | None = None,
    use_beta: bool | None = None,
    **timm_kwargs,
) -> nn.Module:
    """The model of an official preset, optionally with an official (or converted) checkpoint loaded.

    Args:
        name: one of :func:`list_official`, e.g. ``"vit_small_supervised"``, ``"resnet50_dino"``.
        checkpoint: a ``.pth``/``.pth.tar``/``.safetensors`` file to load (strictly).
        key: the checkpoint entry (``"teacher"`` by default for DINO, ``"state_dict"`` for the fork;
            ``"state_dict_ema"``, ``"student"`` on request).
        num_classes: overrides the preset's (1000 supervised, 0 DINO).
        use_beta: overrides the preset's; by default a checkpoint with a ``beta`` gets one.
        **timm_kwargs: passed to ``timm.create_model``.

    Example:
        >>> model = create_official_model("vit_small_dino", checkpoint="vits_dino_simpool_ep100.pth")
    """
    if name not in PRESETS:
        raise ValueError(f"unknown official preset {name!r}; presets: {list_official()}")
    preset = PRESETS[name]
    state, notices = None, []
    if checkpoint is not None:
        state, _, notices = convert_state_dict(read_state_dict(checkpoint, key))
    if use_beta is None:
        use_beta = official_use_beta(preset, state)
    model = build_official(
        preset.model_name,
        preset.wiring,
        preset.gamma,
        use_beta,
        preset.num_classes if num_classes is None else num_classes,
        pool=preset.pool,
        **timm_kwargs,
    )
    if state is not None:
        load_state(model, state, notices=notices, source=str(checkpoint))
    return model


__all__ = [
    "PRESETS",
    "WIRINGS",
    "build_official",
    "create_official_model",
    "list_official",
]
