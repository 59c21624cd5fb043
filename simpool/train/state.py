"""What a training run saves and how it picks up again, shared by the supervised and the DINO loops.

A run's state is a set of named stateful objects (modules, optimizer, scheduler, AMP scaler, EMA, DINO's
centre: anything with ``state_dict`` / ``load_state_dict``), the loop's counters (``epoch``,
``update_in_epoch``, ``update``, and whatever else the loop keeps, such as the best score) and every
process's RNG states, so that dropout, drop-path and Mixup streams resume where they stopped. It lives in
``<run_dir>/last.pt`` (:mod:`.checkpointing`: atomic writes, ``weights_only`` reads).
"""

from __future__ import annotations

from typing import Any

import torch
from timm.utils import random_seed

from .checkpointing import load_state, rng_state, save_state, set_rng_state
from .distributed import DistInfo, broadcast_object
from .run import RunFolder


class ResumeError(ValueError):
    """``last.pt`` cannot be resumed from; the message is one line naming the file and the way out."""

    def __init__(self, path, reason: str):
        self.path = path
        super().__init__(f"cannot resume from {path}: {reason}; start over with --no-resume (train.resume=false)")


def _summary(error: BaseException, limit: int = 240) -> str:
    """The error's message on one line (torch's span several), cut to ``limit`` characters."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def gather_rng_states(info: DistInfo) -> list[dict]:
    """Every process's RNG states (rank order), so each resumes its own dropout / drop-path stream."""
    state = rng_state()
    if not info.distributed:
        return [state]
    gathered = [None] * info.world_size
    torch.distributed.all_gather_object(gathered, state)
    return gathered


class TrainingState:
    """Save and resume the named stateful ``objects`` of a run (``None`` values, e.g. no EMA, are left out).

    Objects named in ``optional`` may be missing from a saved state (an AMP scaler when the saved run was
    fp32, an EMA switched on later): they keep their fresh state. Any other missing object is an error.
    Pass the unwrapped modules (not their DDP or ``torch.compile`` wrappers): the same objects are loaded
    before wrapping and saved after.
    """

    def __init__(
        self, folder: RunFolder, info: DistInfo, objects: dict[str, Any], optional: tuple[str, ...] = ("scaler", "ema")
    ):
        self.folder, self.info, self.optional = folder, info, optional
        self.objects = {name: obj for name, obj in objects.items() if obj is not None}

    def resume(self, enabled: bool, device: torch.device | None = None, seed: int = 0) -> dict:
        """Load ``last.pt`` when ``enabled`` and present; returns its counters, or ``{}`` for a fresh start.

        Rank 0 decides whether ``last.pt`` is there and tells the others, so every process takes the same
        branch. A fresh start truncates an old log in the folder and seeds every RNG with ``seed + rank``
        (streams differ per process); a resume restores this process's RNG states and cuts the log after
        the epoch it resumes from. Everything is read onto the CPU (RNG states must stay there); each
        object's ``load_state_dict`` moves its tensors to its own device (modules copy into their
        parameters, optimizers cast their state to each parameter's device). ``device`` is not used; it
        is kept for callers of the older signature.

        Raises:
            ResumeError: ``last.pt`` cannot be read (truncated, corrupt) or does not fit these objects
                (a changed model or optimizer); the one-line message names the file and suggests ``--no-resume``.
        """
        path = self.folder.last_state
        found = broadcast_object(enabled and path.is_file() if self.info.is_main else None, self.info)
        if not (enabled and found):
            self.folder.truncate_log(0)  # a fresh start in an old run folder does not append to the old log
            random_seed(seed, self.info.rank)  # torch, NumPy (timm's Mixup), Python: seed + rank
            return {}
        state = self._read(path)
        for name, obj in self.objects.items():
            if name in state:
                try:
                    obj.load_state_dict(state[name])
                except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as error:
                    raise ResumeError(path, f"its '{name}' state does not fit this run ({_summary(error)})") from error
            elif name not in self.optional:
                raise ResumeError(path, f"it holds no '{name}' state (it has: {', '.join(sorted(state))})")
        rngs = state["rng"]
        set_rng_state(rngs[min(self.info.rank, len(rngs) - 1)])
        counters = {key: value for key, value in state.items() if key not in self.objects and key != "rng"}
        self.folder.truncate_log(counters["epoch"])
        if self.info.is_main:
            print(f"resumed {self.folder.path} at epoch {counters['epoch']}, update {counters['update']}")
        return counters

    @staticmethod
    def _read(path) -> dict:
        """``last.pt`` loaded on the CPU, checked to be a training state."""
        try:
            state = load_state(path, map_location="cpu")
        except FileNotFoundError as error:
            raise ResumeError(path, "it vanished while resuming") from error
        except PermissionError:  # not the file's content: say it as it is
            raise
        except Exception as error:  # zip, pickle and miniz errors of a truncated or corrupt file
            raise ResumeError(
                path, f"it is truncated or corrupt ({type(error).__name__}: {_summary(error)})"
            ) from error
        missing = [key for key in ("rng", "epoch", "update") if not isinstance(state, dict) or key not in state]
        if missing:
            raise ResumeError(path, f"it is not a training state (no {', '.join(missing)})")
        return state

    def save(self, **counters) -> None:
        """Write the state with ``counters``; every process must call it (the RNG states are gathered)."""
        rngs = gather_rng_states(self.info)
        if not self.info.is_main:
            return
        state = {name: obj.state_dict() for name, obj in self.objects.items()}
        state.update(counters)
        state["rng"] = rngs
        save_state(state, self.folder.last_state)
