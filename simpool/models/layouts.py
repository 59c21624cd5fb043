"""Key layouts of SimPool checkpoints: official key names renamed to the keys of our models.

The authors released supervised checkpoints from their timm fork (timm ``CheckpointSaver`` files:
``state_dict``, and ``state_dict_ema`` when trained with EMA) and self-supervised checkpoints from their
DINO fork (``{"teacher", "student", ...}``, the backbone under ``backbone.``, ``module.`` when DDP-wrapped);
docs/checkpoints.md describes both. Their SimPool module names its parameters
``norm_patches``, ``wq``, ``wk`` (and ``beta``); ours uses timm's ``norm``, ``q``, ``k``. Each layout
recognises one family of files from its keys and renames it. Pure functions over state dicts: nothing
here builds a model or reads a file (``checkpoint.py`` reads, ``official.py`` builds).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# ----------------------------------------------------------------------------------------------
# Key layouts: official key names -> the keys of the model create_official_model builds
# ----------------------------------------------------------------------------------------------

# official SimPool parameter names -> ours (timm's SimPool2d names)
POOL_RENAMES = (("norm_patches.", "norm."), ("wq.", "q."), ("wk.", "k."))

# pre-release DINO names (the remaps commented out in the official utils.py, commit 9220ecc),
# anchored at the start of a key so that a ViT block's ``blocks.i.attn.*`` is never touched
PRERELEASE_RENAMES = (("attn.", "simpool."), ("norm_patches.", "simpool.norm_patches."), ("norm_output.", "norm."))

# Facebook ConvNeXt (the DINO fork's backbone) -> timm ConvNeXt, as timm's convnext.checkpoint_filter_fn
FB_CONVNEXT_RENAMES = (
    (r"^downsample_layers\.0\.", "stem."),
    (r"^downsample_layers\.(\d+)\.(\d+)", r"stages.\1.downsample.\2"),
    (r"^stages\.(\d+)\.(\d+)\.", r"stages.\1.blocks.\2."),
    (r"\.dwconv\.", ".conv_dw."),
    (r"\.pwconv(\d)\.", r".mlp.fc\1."),
    (r"^norm\.", "head.norm."),
)

# where the pooling module sits in a DINO backbone of each family, in our models
DINO_POOL_PATH = {"vit": "attn_pool.pool.", "resnet": "global_pool.pool.", "convnext": "head.global_pool.pool."}


def _rename_pool(name: str, prefix: str, target: str) -> str:
    """``prefix`` + an official SimPool parameter name -> ``target`` + ours."""
    rest = name[len(prefix) :]
    for old, new in POOL_RENAMES:
        if rest.startswith(old):
            rest = new + rest[len(old) :]
    return target + rest


def _dino_family(state: dict) -> str:
    if any(k.startswith("blocks.") for k in state):
        return "vit"
    if any(k.startswith("downsample_layers.") for k in state):
        return "convnext"
    if any(k.startswith("layer4.") for k in state):
        return "resnet"
    raise ValueError("a DINO checkpoint of none of the families vit (blocks.*), resnet (layer4.*), convnext")


def remap_dino(state: dict) -> dict:
    """DINO backbone keys (``module.``/``backbone.`` stripped, projection head dropped) -> ours."""
    family = _dino_family(state)
    pooled = any(k.startswith("simpool.") for k in state)
    out = {}
    for name, value in state.items():
        if name.startswith("simpool."):
            name = _rename_pool(name, "simpool.", DINO_POOL_PATH[family])
        elif family == "vit" and pooled and name.startswith("norm."):
            name = "fc_norm." + name[len("norm.") :]  # the LayerNorm after the pool
        elif family == "convnext":
            for pattern, replacement in FB_CONVNEXT_RENAMES:
                name = re.sub(pattern, replacement, name)
        out[name] = value
    return out


def remap_prerelease(state: dict) -> dict:
    """The pre-release DINO names (``attn.*``, ``norm_patches.*``, ``norm_output.*``) -> ours."""
    out = {}
    for name, value in state.items():
        for old, new in PRERELEASE_RENAMES:
            if name.startswith(old):
                name = new + name[len(old) :]
                break
        out[name] = value
    return remap_dino(out)


def remap_timm_fork(state: dict) -> dict:
    """The supervised timm fork: ``gp.pool.*`` (ViT), ``[head.]global_pool.pool.*`` -> ours."""
    out = {}
    for name, value in state.items():
        if name.startswith("gp.pool."):
            name = _rename_pool(name, "gp.pool.", "attn_pool.pool.")
        else:
            for prefix in ("global_pool.pool.", "head.global_pool.pool."):
                if name.startswith(prefix):
                    name = _rename_pool(name, prefix, prefix)
        out[name] = value
    return out


@dataclass(frozen=True)
class Layout:
    """One key layout of checkpoints: how to recognise it and how to rename it to ours."""

    name: str
    description: str
    detect: Callable[[dict], bool]
    remap: Callable[[dict], dict]


def _starts(state: dict, *prefixes: str) -> bool:
    return any(k.startswith(prefixes) for k in state)


# Tried in order; the first whose detect() holds applies. "simpool" (ours, or plain timm) is last.
LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout(
            "timm_fork",
            "supervised timm fork (state_dict, state_dict_ema): gp.pool.*, [head.]global_pool.pool.*",
            lambda s: any(re.match(r"^(gp|global_pool|head\.global_pool)\.pool\.(norm_patches|wq|wk)\.", k) for k in s),
            remap_timm_fork,
        ),
        Layout(
            "prerelease",
            "pre-release DINO names: attn.*, norm_patches.*, norm_output.* at the top level",
            lambda s: _starts(s, "attn.", "norm_patches.", "norm_output."),
            remap_prerelease,
        ),
        Layout(
            "dino",
            "DINO fork (student / teacher): simpool.*, FB ConvNeXt stages, norm after the pool",
            lambda s: _starts(s, "simpool.", "downsample_layers."),
            remap_dino,
        ),
        Layout("simpool", "ours, or plain timm keys: used as they are", lambda s: True, lambda s: dict(s)),
    )
}


def convert_state_dict(state: dict, layout: str | None = None) -> tuple[dict, str, list[str]]:
    """Rename an official (or our own) state dict to the keys of our models.

    Strips DDP's ``module.`` and DINO's ``backbone.`` prefixes, drops the DINO projection head
    (``head.*`` beside ``backbone.*``) and split-batch-norm ``aux_bn`` tensors, then applies the
    layout's renames.

    Args:
        state: name -> tensor.
        layout: a name of :data:`LAYOUTS`, or None to detect it from the keys.

    Returns:
        ``(state, layout name, notices)``: the renamed state, the layout used, and one line per
        group of tensors that was dropped.
    """
    notices = []
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if _starts(state, "backbone."):
        head = sorted(k for k in state if not k.startswith("backbone."))
        if head:
            notices.append(f"ignored {len(head)} tensors of the DINO projection head ({head[0]}, ...)")
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    aux = sorted(k for k in state if ".aux_bn." in k)
    if aux:
        notices.append(f"ignored {len(aux)} split-batch-norm aux_bn tensors ({aux[0]}, ...)")
        state = {k: v for k, v in state.items() if ".aux_bn." not in k}
    if layout is None:
        layout = next(name for name, entry in LAYOUTS.items() if entry.detect(state))
    elif layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; layouts: {list(LAYOUTS)}")
    return LAYOUTS[layout].remap(state), layout, notices
