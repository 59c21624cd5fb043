"""Training state on disk: atomic writes, ``weights_only=True`` reads, RNG states as tensors.

A training state is a dict of tensors, numbers, strings and plain containers (model, optimizer,
scheduler, scaler and EMA state dicts, RNG states, epoch and update counters). It is serialised with
``torch.save`` into memory and written with a temporary file then ``os.replace``, so a reader sees the
old file or the new one, never half of one; it is read back with ``torch.load(weights_only=True)``,
which never executes code. Model weights for users go to safetensors (``simpool.models.save_checkpoint``).
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import numpy as np
import torch

from ..utils import atomic_write_bytes


def save_state(state: dict, path: str | os.PathLike) -> Path:
    """Write a training state atomically (temporary file in the same folder, then rename)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_state(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a training state written by :func:`save_state`, without executing code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training state at {path}")
    return torch.load(path, map_location=map_location, weights_only=True)


def rng_state() -> dict[str, torch.Tensor]:
    """The torch (CPU, and this process's CUDA device), NumPy and Python RNG states, every one as a tensor.

    ``"cuda"`` is ``(1, L)``: the generator of the current CUDA device only (the device this process trains
    on), so a state saved with eight visible GPUs restores where one is visible, and no other device's
    generator is touched.
    """
    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": torch.tensor(list(words), dtype=torch.int64),
        "python_gauss": torch.tensor([float("nan") if gauss is None else gauss], dtype=torch.float64),
        "python_version": torch.tensor([version]),
        "numpy": torch.from_numpy(keys.astype(np.int64)),
        "numpy_aux": torch.tensor([pos, has_gauss]),
        "numpy_gauss": torch.tensor([cached], dtype=torch.float64),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state().unsqueeze(0)  # (1, L): the current device
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    """Restore what :func:`rng_state` captured; the tensors may lie on any device (they are read on the CPU).

    The CUDA state goes to the current CUDA device only, and only when one is visible: a ``(1, L)`` state
    is that device's; a ``(D, L)`` state (older files: every device of the saving process) gives the row of
    the current device index when it has one. A CUDA state without a visible device is skipped, never an error.
    """
    state = {key: value.cpu() for key, value in state.items()}  # no .numpy() / int() on device tensors
    torch.set_rng_state(state["torch"])
    gauss = state["python_gauss"].tolist()[0]
    version = state["python_version"].tolist()[0]
    random.setstate((version, tuple(state["python"].tolist()), None if gauss != gauss else gauss))
    pos, has_gauss = state["numpy_aux"].tolist()
    keys = state["numpy"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, pos, has_gauss, state["numpy_gauss"].tolist()[0]))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and torch.cuda.device_count() > 0:
        device = torch.cuda.current_device()
        rows = cuda.reshape(-1, cuda.shape[-1])  # (D, L)
        if len(rows) == 1 or device < len(rows):
            torch.cuda.set_rng_state(rows[0 if len(rows) == 1 else device], device)
