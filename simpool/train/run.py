"""The run folder: resolved config, CSV log (plus TensorBoard events when installed), checkpoints.

Layout of ``<output>/<name>/``::

    config.yaml          the resolved config (defaults + recipe + overrides)
    log.csv              one row per epoch (columns fixed by the first row)
    last.pt              full training state for --resume (torch, weights_only-loadable)
    last.safetensors     model weights at the last epoch end (and last_ema.safetensors with EMA)
    best.safetensors     model weights of the best validation top-1 (and best_ema.safetensors)
    tensorboard/         events, when the tensorboard package is installed

Only the main process (rank 0) writes; every write is atomic.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from ..utils import atomic_write_bytes
from .config import save_config


class RunFolder:
    """A training run's folder; every method is a no-op on processes other than the main one."""

    def __init__(self, path: str | os.PathLike, is_main: bool = True):
        self.path = Path(path)
        self.is_main = is_main
        self._writer = None
        if is_main:
            self.path.mkdir(parents=True, exist_ok=True)

    @property
    def last_state(self) -> Path:
        return self.path / "last.pt"

    @property
    def log_path(self) -> Path:
        return self.path / "log.csv"

    def weights(self, name: str) -> Path:
        """``last``, ``best``, ``last_ema``, ``best_ema`` -> their safetensors path."""
        return self.path / f"{name}.safetensors"

    def write_config(self, config) -> None:
        if self.is_main:
            save_config(config, self.path / "config.yaml")

    def log(self, row: dict, step: int | None = None) -> None:
        """Append ``row`` to ``log.csv`` (rewritten atomically) and to TensorBoard when available."""
        if not self.is_main:
            return
        rows = self.read_log()
        if rows and list(rows[0]) != list(row):
            fieldnames = list(dict.fromkeys([*rows[0], *row]))
        else:
            fieldnames = list(row)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fieldnames, restval="")
        writer.writeheader()
        writer.writerows([*rows, row])
        atomic_write_bytes(self.log_path, buffer.getvalue().encode())
        tensorboard = self._tensorboard()
        if tensorboard is not None and step is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)):
                    tensorboard.add_scalar(key, value, step)
            tensorboard.flush()

    def read_log(self) -> list[dict]:
        """The rows of ``log.csv`` as dicts of strings (empty before the first epoch)."""
        if not self.log_path.is_file():
            return []
        with open(self.log_path, newline="") as file:
            return list(csv.DictReader(file))

    def truncate_log(self, after_epoch: int) -> None:
        """Drop rows of epochs ``>= after_epoch``: on resume, the killed run may have logged them."""
        if not self.is_main or not self.log_path.is_file():
            return
        rows = [row for row in self.read_log() if int(row["epoch"]) < after_epoch]
        if not rows:
            self.log_path.unlink()
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(self.log_path, buffer.getvalue().encode())

    def _tensorboard(self):
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                self._writer = False
                return None
            self._writer = SummaryWriter(str(self.path / "tensorboard"))
        return self._writer or None

    def close(self) -> None:
        if self._writer:
            self._writer.close()
