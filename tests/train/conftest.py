"""The training tests' tiny ImageFolder, their ``key=value`` overrides for a tiny CPU run, and the SIGKILL hook
that the resume tests inject into the engine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.conftest import train_overrides as overrides  # noqa: F401  (imported by the training tests)


def kill_hook(update: int) -> Callable:
    """An ``Engine.update_hooks`` entry: SIGKILL this process right after update ``update`` (a crash, no clean-up)."""

    def hook(engine) -> None:
        if engine.counters.update == update:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def run_cli_killed_at(update: int, args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    """``simpool ARGS`` in a fresh process (one CPU thread, the repository root) that SIGKILLs itself after
    update ``update`` (0: never); its return code is -9 when it died there."""
    script = (
        "from simpool.train.engine import Engine; from tests.train.conftest import kill_hook; "
        f"Engine.update_hooks = (kill_hook({update}),) if {update} else (); "
        f"from simpool.cli.main import main; raise SystemExit(main({[str(arg) for arg in args]!r}))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", script]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def tiny_data(tmp_path: Path, write_image_folder) -> Path:
    """``tmp_path/data/{train,val}``: 2 classes, 16 training and 8 validation images per class."""
    root = tmp_path / "data"
    write_image_folder(root / "train", per_class=16, seed=0)
    write_image_folder(root / "val", per_class=8, seed=1)
    return root
