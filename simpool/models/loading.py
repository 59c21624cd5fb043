"""One way to build a model and load its weights, for every command: ``load_model``.

The weights may be ours (``simpool train``: safetensors), an official SimPool release (any layout of
``layouts.py``) or a plain timm state dict; loading is strict, and a mismatch names the missing and the
unexpected keys. The number of classes is read from the checkpoint's classifier when not given, so that a
classifier checkpoint builds its classifier and a backbone checkpoint (a DINO teacher) builds none.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from .checkpoint import classifier_keys, load_state, read_state_dict
from .factory import create_model
from .layouts import convert_state_dict


def num_classes_in(state: dict[str, torch.Tensor], model: nn.Module) -> int:
    """The classifier width the checkpoint ``state`` holds for ``model``'s architecture (0: no classifier)."""
    weights = [name for name in classifier_keys(model) if name.endswith("weight") and name in state]
    return int(state[weights[0]].shape[0]) if weights else 0


def load_model(
    name: str,
    pool: str = "simpool",
    pool_kwargs: dict | None = None,
    model_kwargs: dict | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_key: str | None = None,
    num_classes: int | None = None,
) -> nn.Module:
    """``create_model(name, pool, pool_kwargs, num_classes, **model_kwargs)`` with ``checkpoint`` loaded strictly.

    Args:
        num_classes: the classifier's outputs; None: as many as the checkpoint's classifier has (0 when it has
            none, or without a checkpoint).

    Raises:
        ValueError: the checkpoint does not fit (its missing and unexpected keys named), or a tensor's shape
            differs (named with both shapes).
    """
    pool_kwargs, model_kwargs = dict(pool_kwargs or {}), dict(model_kwargs or {})
    state, notices = None, []
    if checkpoint is not None:
        state, _, notices = convert_state_dict(read_state_dict(checkpoint, checkpoint_key))
        if num_classes is None:
            probe = create_model(name, pool=pool, pool_kwargs=pool_kwargs, num_classes=2, **model_kwargs)
            num_classes = num_classes_in(state, probe)
    model = create_model(name, pool=pool, pool_kwargs=pool_kwargs, num_classes=num_classes or 0, **model_kwargs)
    if state is not None:
        load_state(model, state, notices=notices, source=str(checkpoint), strict=True)
    return model
