"""The run folder: resolved config, CSV log (plus TensorBoard events when installed), checkpoints.

Layout of ``<output>/<name>/``::

    config.yaml          the resolved config (defaults + recipe + overrides)
    log.csv              one row per epoch (columns fixed by the first row)
    last.pt              full training state for --resume (torch, weights_only-loadable)
    last.safetensors     model weights at the last epoch end (and last_ema.safetensors with EMA)
    best.safetensors     model weights of the best validation top-1 (and best_ema.safetensors)
    tensorboard/         events, when the tensorboard package is installed
    .lock                the process training in the folder (pid, host, since when), while it runs

Only the main process (rank 0) writes; every write is atomic. A folder is used by one run at a time:
``with folder.lock():`` refuses a second run while the first lives (:class:`RunLock`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from ..utils import atomic_write_bytes
from .config import save_config
from .distributed import DistInfo, broadcast_object


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

    @staticmethod
    def after_interrupt(path: str | os.PathLike | None) -> str:
        """What to do after a Ctrl-C of the run in folder ``path``: resume it when it saved a ``last.pt`` (its own,
        or that of a run folder inside it, as the demo's arms have), else start it again (nothing to resume from)."""
        if path is None:
            return "interrupted: run the same command again to start it again"
        if next(Path(path).rglob("last.pt"), None) is None:
            return f"interrupted before {path} saved a checkpoint: run the same command again to start afresh"
        return f"interrupted: run the same command again to resume {path} from its last checkpoint (last.pt)"

    @property
    def log_path(self) -> Path:
        return self.path / "log.csv"

    def weights(self, name: str) -> Path:
        """``last``, ``best``, ``last_ema``, ``best_ema`` -> their safetensors path."""
        return self.path / f"{name}.safetensors"

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    def lock(self, info: DistInfo | None = None) -> RunLock:
        """The folder's lock (``with folder.lock(info): ...``); only the main process takes it.

        With ``info`` of a distributed run, every process must enter it: rank 0's refusal is broadcast,
        so every rank raises the same :class:`RunLockedError` instead of waiting for rank 0 at a collective.
        """
        return RunLock(self.path, enabled=self.is_main, info=info)

    def write_config(self, config) -> None:
        if self.is_main:
            save_config(config, self.config_path)

    def read_config(self) -> dict | None:
        """The saved ``config.yaml`` as a nested dict (what :func:`.config.to_dict` gave), or ``None`` if absent."""
        if not self.config_path.is_file():
            return None
        try:
            data = yaml.safe_load(self.config_path.read_text())
        except yaml.YAMLError as error:
            raise ValueError(f"cannot read {self.config_path}: {str(error).splitlines()[0]}") from error
        return data if isinstance(data, dict) else None

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


class RunLockedError(ValueError):
    """Another live process trains in this run folder."""


class RunLock:
    """``<run>/.lock``: one line of JSON naming the process that trains in the folder (pid, host, since when).

    :meth:`acquire` creates it atomically (``O_CREAT | O_EXCL``), so of two runs started together exactly one
    gets it; :meth:`release` removes it (the context manager also on an exception). A lock left by a
    process that died without releasing it (SIGKILL, power cut) is stale when it names this host and a pid
    that no longer runs (or that now belongs to a later process): it is taken over with a note. A lock held
    by a live process, or by one on another host (which cannot be checked), raises :class:`RunLockedError`.
    With ``enabled=False`` (processes other than rank 0) nothing is locked; with the run's ``info`` every
    rank's :meth:`acquire` raises rank 0's refusal (all ranks must call it then).
    """

    NAME = ".lock"
    UNREADABLE_GRACE_S = 10.0  # an empty or unparseable lock younger than this is being written by its owner

    def __init__(self, folder: str | os.PathLike, enabled: bool = True, info: DistInfo | None = None):
        self.folder = Path(folder)
        self.path = self.folder / self.NAME
        self.enabled = enabled
        self.info = info
        self.held = False
        self.note: str | None = None
        self._token = secrets.token_hex(8)

    def acquire(self) -> str | None:
        """Take the lock; returns (and prints) a note when a stale lock was taken over, else ``None``.

        Raises:
            RunLockedError: a live process holds it; the message names that process and the folder. With
                ``info``, raised on every rank when rank 0 could not lock (a collective: all ranks call it).
        """
        refusal = None
        if self.enabled and not self.held:
            try:
                self._acquire()
            except RunLockedError as error:
                refusal = str(error)
        if self.info is not None:
            refusal = broadcast_object(refusal, self.info)
        if refusal:
            raise RunLockedError(refusal)
        return self.note

    def _acquire(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        content = json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "start": _process_start(os.getpid()),
                "token": self._token,
            }
        )
        deadline = time.monotonic() + self.UNREADABLE_GRACE_S + 5.0
        while time.monotonic() < deadline:
            try:
                handle = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                self._clear_stale()
                continue
            with os.fdopen(handle, "w") as file:
                file.write(content + "\n")
            self.held = True
            if self.note:
                print(self.note, file=sys.stderr)
            return
        raise RunLockedError(f"could not lock the run folder {self.folder}: delete {self.path} if no run uses it")

    def release(self) -> None:
        """Remove the lock if this object holds it (a lock taken over by another process is left alone)."""
        if not self.held:
            return
        self.held = False
        owner = _read_owner(self.path)
        if owner is not None and owner.get("token") == self._token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _clear_stale(self) -> None:
        """Remove the existing lock if it is stale; raise :class:`RunLockedError` if its owner lives."""
        owner = _read_owner(self.path)
        if owner is None:  # empty or garbled: being written right now, or left so by a crash
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return  # released meanwhile: try again
            if age < self.UNREADABLE_GRACE_S:
                time.sleep(0.2)
                return
            reason = f"an unreadable lock file {age:.0f} s old"
        else:
            if not _is_stale(owner):
                raise RunLockedError(_locked_message(self.folder, self.path, owner))
            reason = f"pid {owner.get('pid')} on {owner.get('host')} (since {owner.get('since')}), no longer running"
        # Move it aside, then check that what moved is what was judged stale: a concurrent run may have
        # replaced it in between, and its live lock must not be deleted.
        aside = self.path.with_name(f"{self.NAME}.stale.{self._token}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        moved = _read_owner(aside)
        if owner is not None and (moved is None or moved.get("token") != owner.get("token")):
            try:
                os.link(aside, self.path)  # put the live lock back (fails if yet another one appeared)
            except FileExistsError:
                pass
            aside.unlink(missing_ok=True)
            return
        aside.unlink(missing_ok=True)
        self.note = f"note: took over the stale lock of {self.folder}: {reason}"


def _read_owner(path: Path) -> dict | None:
    """The lock file's JSON, or ``None`` when it is missing, empty or garbled."""
    try:
        owner = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return owner if isinstance(owner, dict) and "pid" in owner else None


def _is_stale(owner: dict) -> bool:
    """Whether the lock's process is gone: only decidable on its own host."""
    if owner.get("host") != socket.gethostname():
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        pass
    start = owner.get("start")
    return start is not None and _process_start(pid) not in (None, start)  # the pid now names a later process


def _process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux ``/proc``), or ``None`` elsewhere."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(text.rsplit(")", 1)[1].split()[19])  # field 22; fields 3.. follow the command name
    except (IndexError, ValueError):
        return None


def _locked_message(folder: Path, path: Path, owner: dict) -> str:
    message = (
        f"run folder {folder} is in use by pid {owner.get('pid')} on {owner.get('host')} since {owner.get('since')}: "
        "wait for that run to end or choose another run folder (train.name or --out)"
    )
    if owner.get("host") != socket.gethostname():
        message += f" (if that process is gone, delete {path})"
    return message
