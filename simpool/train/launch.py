"""How every run starts and fails: :func:`launch` is the one place that joins the process group, locks the run
folder, installs signal handling and turns a run's errors into one line.

Every command that trains (``simpool train``, ``train-dino``, ``eval finetune``, ``probe``, ``demo``,
``tournament``) calls ``launch(recipe, config)``. Its errors are ``ValueError``s of one line that name the
folder or file and the way out (:class:`~simpool.train.state.ResumeError`,
:class:`~simpool.train.run.RunLockedError`, a config's own); ``simpool``'s entry point prints them on stderr and
exits with code 2. SIGTERM (a scheduler's preemption) and Ctrl-C leave through the ``finally`` blocks, so the
lock is released and the process group left; the run resumes from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, Protocol

from .distributed import DEFAULT_TIMEOUT_S, DistInfo, cleanup, init_distributed
from .run import RunFolder


class Launchable(Protocol):
    """A recipe (:class:`~simpool.train.recipe.Recipe`) or a study of several (the demo, the tournament)."""

    run_dir: Path | None  # None: no run folder (nothing locked, nothing kept)

    def run(self, info: DistInfo, folder: RunFolder | None) -> dict: ...


@contextlib.contextmanager
def sigterm_exits():
    """SIGTERM exits through the ``finally`` blocks (main thread only; a no-op elsewhere)."""
    try:
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    except ValueError:  # not the main thread: the caller's handlers stay
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def launch(recipe: Launchable, config: Any = None) -> dict:
    """Run ``recipe`` in its locked run folder ``recipe.run_dir``; returns its result plus ``{"run_dir"}`` (a recipe
    whose ``run_dir`` is None runs without a folder and returns its result as it is).

    Args:
        recipe: what to run; ``recipe.run(info, folder)`` trains (through :class:`~simpool.train.engine.Engine`).
        config: the resolved config; its ``train`` section, when it has one, gives the device (``auto``: CUDA
            when available) and the process-group timeout.

    Raises:
        ValueError: one line: the folder is locked by a live run, the run cannot resume, a config value is bad.
        KeyboardInterrupt: after saying how to resume (on stderr).
    """
    train = getattr(config, "train", None)
    info = init_distributed(getattr(train, "device", "auto"), getattr(train, "dist_timeout_s", DEFAULT_TIMEOUT_S))
    try:
        if recipe.run_dir is None:  # a run that keeps nothing on disk (the linear and segmentation probes)
            with sigterm_exits():
                return recipe.run(info, None)
        folder = RunFolder(recipe.run_dir, is_main=info.is_main)
        with folder.lock(info), sigterm_exits():
            try:
                result = recipe.run(info, folder)
            finally:
                folder.close()
        return {**result, "run_dir": str(folder.path)}
    except KeyboardInterrupt:
        if info.is_main:
            print(RunFolder.after_interrupt(recipe.run_dir), file=sys.stderr)
        raise
    except BaseException as error:
        # the traceback's frames hold the run's DDP modules, which would keep the process group (and gloo's
        # threads) alive past cleanup into interpreter shutdown: let go of their locals, keep the traceback
        traceback.clear_frames(error.__traceback__)
        raise
    finally:
        cleanup()
