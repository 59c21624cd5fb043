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
    """The torch (CPU and CUDA), NumPy and Python RNG states, every one as a tensor."""
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
        state["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"].cpu())
    gauss = float(state["python_gauss"][0])
    random.setstate(
        (int(state["python_version"][0]), tuple(int(w) for w in state["python"]), None if gauss != gauss else gauss)
    )
    pos, has_gauss = (int(v) for v in state["numpy_aux"])
    keys = state["numpy"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, pos, has_gauss, float(state["numpy_gauss"][0])))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"].cpu()))
