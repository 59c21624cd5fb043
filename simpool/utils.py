"""Small helpers shared across the package: atomic writes, device choice."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import torch


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` all or nothing: a temporary file in the same folder, then a rename.

    The file gets the mode a plain ``open(path, "wb")`` gives a new file (``0o666`` less the umask), not
    ``mkstemp``'s ``0o600``: checkpoints, configs and logs stay readable by whoever could read the folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = _create_temporary(path)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def _create_temporary(path: Path) -> tuple[int, str]:
    """A new file ``.<name>.<random>.tmp`` beside ``path``, opened for writing with mode ``0o666 & ~umask``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temporary = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:  # another writer drew the same name: draw again
            continue
    raise FileExistsError(f"could not create a temporary file beside {path}")


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, default=float) + "\n").encode())


def usable_cpus() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity`` where the system has it, else ``os.cpu_count``)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_device() -> torch.device:
    """CUDA when available, else CPU: chosen once by entry points, then passed down."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def warmup_cosine(optimizer: torch.optim.Optimizer, steps: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step learning-rate factor ``min(1, (s + 1) / warmup) * (1 + cos(pi * min(s, steps) / steps)) / 2``:
    a linear ramp multiplied by a cosine decay to 0 (the demo's and the tournament's short CPU runs)."""
    import math

    def factor(step: int) -> float:
        return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def parse_kv(items) -> dict:
    """``["img_size=32", "depth=2"]`` -> ``{"img_size": 32, "depth": 2}``: the one ``key=value`` parser.

    Values are read as YAML scalars (``2``, ``1e-3``, ``true``, ``null``, ``[1, 2]``); an item without ``=``
    is a ``ValueError`` naming it.
    """
    import yaml

    kwargs = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected key=value, got {item!r}")
        kwargs[key.strip()] = yaml.safe_load(value)
    return kwargs


class UnknownKeywordError(ValueError, TypeError):
    """A constructor's keyword it does not take (a pool's or a timm model's), said in one line with the valid ones.

    A ``ValueError`` for the command line (one line, exit code 2) and a ``TypeError`` for code that tries a keyword
    and falls back without it, as it would on the constructor's own ``TypeError`` (``dynamic_img_size``, ``img_size``).
    """
