"""Reading and writing weights without ever executing code from a file."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from safetensors.torch import load_file, save
from torch import nn

from ..utils import atomic_write_bytes

STATE_KEYS = ("state_dict", "model", "teacher", "student")


def read_state_dict(path: str | os.PathLike, key: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint: safetensors, or a torch file read with ``weights_only=True``.

    A file whose unpickling would need anything but tensors and plain containers is refused.
    ``key`` picks an entry of a checkpoint dict (``state_dict_ema``, ``teacher``, ...); by default
    the first of ``state_dict``, ``model``, ``teacher``, ``student`` that is present, else the dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, EOFError) as error:
        raise ValueError(
            f"refusing to load {path}: it is not a safetensors file nor a torch file of plain tensors "
            f"(weights_only=True rejected it: {str(error).splitlines()[0]})"
        ) from error
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} holds a {type(checkpoint).__name__}, not a dict of tensors")
    if key is not None:
        if key not in checkpoint:
            raise KeyError(f"{path} has no entry {key!r}; entries: {sorted(checkpoint)}")
        checkpoint = checkpoint[key]
    else:
        checkpoint = next((checkpoint[k] for k in STATE_KEYS if isinstance(checkpoint.get(k), dict)), checkpoint)
    state = {name.removeprefix("module."): value for name, value in checkpoint.items() if torch.is_tensor(value)}
    if not state:
        raise ValueError(f"{path} contains no tensors")
    return state


def load_checkpoint(model: nn.Module, path: str | os.PathLike, key: str | None = None, strict: bool = True) -> dict:
    """Load weights into ``model``; missing or unexpected keys are reported by name.

    Returns:
        ``{"missing": [...], "unexpected": [...]}``.

    Raises:
        ValueError: a tensor's shape differs (naming it and both shapes), or, with ``strict``, keys
            are missing or unexpected.
    """
    state = read_state_dict(path, key)
    own = model.state_dict()
    for name, value in state.items():
        if name in own and own[name].shape != value.shape:
            raise ValueError(f"{name}: checkpoint has shape {tuple(value.shape)}, model has {tuple(own[name].shape)}")
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if strict and (missing or unexpected):
        raise ValueError(f"checkpoint {path} does not fit the model: missing {missing}, unexpected {unexpected}")
    model.load_state_dict(state, strict=False)
    return {"missing": missing, "unexpected": unexpected}


def save_checkpoint(model: nn.Module | dict, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """Write a model's weights (or a state dict) as safetensors, atomically: all or nothing."""
    state = model.state_dict() if isinstance(model, nn.Module) else model
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in state.items()}
    return atomic_write_bytes(path, save(state, metadata=metadata))
