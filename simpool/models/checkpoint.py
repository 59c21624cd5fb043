"""Reading and writing weights without ever executing code from a file."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from ..pooling import SimPool
from ..utils import atomic_write_bytes
from .layouts import convert_state_dict

STATE_KEYS = ("state_dict", "model", "teacher", "student")

# Plain-data classes that official checkpoints pickle beside their tensors (timm's saver and DINO
# store the training ``args`` as an ``argparse.Namespace``). Unpickling one sets attributes only. The only
# argparse import outside simpool/cli/, and it parses nothing (tests/test_layers.py names this exemption).
SAFE_GLOBALS = (argparse.Namespace,)


def _unsafe_globals(path: Path) -> list[str]:
    """The globals a torch file would import, found by scanning its pickle without running it."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a torch zip or legacy file: the load error says enough
        return []


def read_state_dict(path: str | os.PathLike, key: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint: safetensors, or a torch file read with ``weights_only=True``.

    A file whose unpickling would need anything but tensors, plain containers and an
    ``argparse.Namespace`` (the ``args`` of timm's and DINO's checkpoints) is refused: nothing in it runs.
    ``key`` picks an entry of a checkpoint dict (``state_dict_ema``, ``teacher``, ...); by default
    the first of ``state_dict``, ``model``, ``teacher``, ``student`` that is present, else the dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.suffix == ".safetensors":
        _check_safetensors(path)
        try:
            return load_file(str(path))
        except SafetensorError as error:
            raise ValueError(f"{path} is not a valid safetensors file: {error}") from error
    _check_torch_file(path)
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, EOFError, OSError, IndexError, KeyError) as error:
        unsafe = [name for name in _unsafe_globals(path) if name != "argparse.Namespace"]
        cut_short = isinstance(error, EOFError) or "EOF" in str(error) or "truncated" in str(error)
        if not unsafe and cut_short and not zipfile.is_zipfile(path):
            raise ValueError(
                f"{path} is truncated or corrupted: a legacy torch file whose pickle cannot be read to its end "
                f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'no message'})"
            ) from error
        reason = f"it would import {unsafe}" if unsafe else str(error).splitlines()[0]
        raise ValueError(
            f"refusing to load {path}: it is not a safetensors file nor a torch file of plain tensors "
            f"(torch.load(weights_only=True) rejected it: {reason})"
        ) from error
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} holds a {type(checkpoint).__name__}, not a dict of tensors")
    if key is not None:
        if key not in checkpoint:
            raise ValueError(f"{path} has no entry {key!r} (--checkpoint-key); entries: {sorted(checkpoint)}")
        checkpoint = checkpoint[key]
    else:
        checkpoint = next((checkpoint[k] for k in STATE_KEYS if isinstance(checkpoint.get(k), dict)), checkpoint)
    state = {name.removeprefix("module."): value for name, value in checkpoint.items() if torch.is_tensor(value)}
    if not state:
        raise ValueError(f"{path} contains no tensors")
    return state


def _check_safetensors(path: Path) -> None:
    """Refuse a file that is no safetensors file, or a truncated one, by its layout: 8 bytes giving the header
    length ``n`` (little-endian), an ``n``-byte JSON header with each tensor's ``data_offsets``, then the data.

    Raises:
        ValueError: naming the file: "not a safetensors file" (e.g. a text file) or "truncated".
    """
    size = path.stat().st_size
    with open(path, "rb") as file:
        start = file.read(9)
        length = int.from_bytes(start[:8], "little") if len(start) >= 8 else 0
        if len(start) < 9 or start[8:9] != b"{" or length < 2 or length > 100_000_000:
            raise ValueError(
                f"{path} is not a safetensors file: it does not start with an 8-byte header length and a JSON "
                f"header (first bytes: {start[:9]!r})"
            )
        if 8 + length > size:
            raise ValueError(f"{path} is truncated: its header needs {8 + length} bytes, the file has {size}")
        file.seek(8)
        try:
            header = json.loads(file.read(length))
        except ValueError:
            raise ValueError(f"{path} is not a safetensors file: its {length}-byte header is not JSON") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a safetensors file: its header is not a JSON object")
    ends = [
        entry["data_offsets"][1] for entry in header.values() if isinstance(entry, dict) and "data_offsets" in entry
    ]
    expected = 8 + length + max(ends, default=0)
    if expected > size:
        raise ValueError(f"{path} is truncated: its header lists tensors up to byte {expected}, the file has {size}")


def _check_torch_file(path: Path) -> None:
    """Refuse what is no torch file (no zip archive, no pickle) or a zip archive cut short, naming the file."""
    with open(path, "rb") as file:
        start = file.read(4)
    if start.startswith(b"PK"):
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path} is truncated: a torch zip archive without its end (central directory)")
        return
    if not start.startswith(b"\x80"):  # the PROTO opcode that starts torch's legacy (pickle) files
        raise ValueError(
            f"{path} is not a checkpoint: neither a torch file (zip archive or pickle) nor a .safetensors file "
            f"(first bytes: {start!r})"
        )


def load_checkpoint(
    model: nn.Module,
    path: str | os.PathLike,
    key: str | None = None,
    strict: bool = True,
    layout: str | None = None,
) -> dict:
    """Load our own or an official SimPool checkpoint into ``model``.

    The key layout is detected (or named by ``layout``, see ``simpool.models.layouts.LAYOUTS``)
    and renamed to ours: the supervised timm fork (``state_dict``, or ``key="state_dict_ema"``),
    DINO (``teacher`` by default, ``key="student"``) and the pre-release names. Build the model
    for an official file with ``simpool.models.official.create_official_model``, which wires the
    norms around the pool as the official code did.

    Returns:
        ``{"missing": [...], "unexpected": [...], "layout": str, "notices": [...]}``; each notice
        (tensors deliberately ignored, e.g. split-batch-norm ``aux_bn``) is also issued as a warning.

    Raises:
        ValueError: a tensor's shape differs (naming it and both shapes), or, with ``strict``, keys
            are missing or unexpected (named).
    """
    state, layout, notices = convert_state_dict(read_state_dict(path, key), layout)
    report = load_state(model, state, notices=notices, source=str(path), strict=strict)
    return {**report, "layout": layout}


def _shape_hint(model: nn.Module, name: str) -> str:
    """Why tensor ``name`` of a checkpoint may differ in shape from ``model``'s: its likely cause, by where it is."""
    if name in classifier_keys(model):
        return "another class count? set num_classes (--num-classes) to the checkpoint's, or leave it unset"
    if name.endswith("pos_embed"):
        token = "without" if "cls_token" in model.state_dict() else "with"
        return f"a checkpoint {token} a CLS token, or of another image size? --pool auto reads its own pool"
    if ".pool." in f".{name}":
        return "another pool or pool arguments? --pool auto reads the checkpoint's own"
    return "another width or depth? the model is the one named, with its model kwargs"


def classifier_keys(model: nn.Module) -> list[str]:
    """The state-dict names of ``model``'s classifier tensors (``head.weight``, ``fc.bias``...)."""
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(classifier, nn.Module):
        return []
    own = {id(t) for t in classifier.state_dict(keep_vars=True).values()}
    return [name for name, t in model.state_dict(keep_vars=True).items() if id(t) in own]


def load_pretrained(
    model: nn.Module, path: str | os.PathLike, key: str | None = None, layout: str | None = None
) -> dict:
    """Initialise ``model`` from a checkpoint for fine-tuning: every tensor but the classifier's.

    The classifier keeps its fresh initialisation (a new task has other classes); every other tensor
    of the model must be in the checkpoint, else a ``ValueError`` names the missing ones.

    Returns:
        the report of :func:`load_checkpoint`.
    """
    state, layout, notices = convert_state_dict(read_state_dict(path, key), layout)
    head_names = set(classifier_keys(model))
    state = {name: value for name, value in state.items() if name not in head_names}
    report = load_state(model, state, notices=notices, source=str(path), strict=False)
    missing = [name for name in report["missing"] if name not in head_names]
    if missing:
        raise ValueError(f"checkpoint {path} lacks model weights: {missing}")
    return {**report, "missing": missing, "layout": layout}


def load_state(
    model: nn.Module, state: dict, notices: list[str] | tuple = (), source: str = "state dict", strict: bool = True
) -> dict:
    """Load a state dict already in our key names; the checks and reports of :func:`load_checkpoint`."""
    notices = list(notices)
    own = model.state_dict()
    for name in [k for k in state if k.endswith("pool.beta") and k not in own]:
        prefix = name[: -len(".beta")]
        pool = model.get_submodule(prefix) if prefix + ".norm.weight" in own else None
        if isinstance(pool, SimPool) and pool.gamma is None:
            # the official SimPool adds beta only with gamma, and its loader drops unknown keys
            notices.append(f"ignored {name}: the official SimPool uses beta only with a gamma")
            state = {k: v for k, v in state.items() if k != name}
    differ = [name for name in own if name in state and own[name].shape != state[name].shape]  # the model's order
    if differ:
        first = differ[0]
        raise ValueError(
            f"checkpoint {source} does not fit the model: {len(differ)} tensor(s) differ in shape, first "
            f"{first}: checkpoint has shape {tuple(state[first].shape)}, model has {tuple(own[first].shape)} "
            f"({_shape_hint(model, first)})"
        )
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if strict and (missing or unexpected):
        hint = ""
        if any(k.endswith("pool.beta") for k in unexpected):
            hint = " (the checkpoint's SimPool has a beta: build the pool with use_beta=True)"
        elif any(k.endswith("norm.weight") and ("fc_norm" in k or k.startswith("norm.")) for k in missing + unexpected):
            hint = " (an official checkpoint? build its model with simpool.models.official.create_official_model)"
        raise ValueError(
            f"checkpoint {source} does not fit the model: missing {missing}, unexpected {unexpected}{hint}"
        )
    for notice in notices:
        warnings.warn(f"{source}: {notice}", stacklevel=3)
    model.load_state_dict(state, strict=False)
    return {"missing": missing, "unexpected": unexpected, "notices": notices}


def save_checkpoint(model: nn.Module | dict, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """Write a model's weights (or a state dict) as safetensors, atomically: all or nothing."""
    state = model.state_dict() if isinstance(model, nn.Module) else model
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in state.items()}
    return atomic_write_bytes(path, save(state, metadata=metadata))
