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
from .config import check_resume_config, to_dict
from .distributed import DistInfo, all_gather_objects, broadcast_object
from .run import RunFolder

NO_RESUME = "start over with --no-resume (train.resume=false)"


class ResumeError(ValueError):
    """A run cannot resume: ``last.pt`` is unreadable or does not fit, or the config changed. The message is
    one line naming the file (or folder) and the way out."""

    def __init__(self, path, reason: str, suggest: bool = True):
        self.path = path
        super().__init__(f"cannot resume {path}: {reason}" + (f"; {NO_RESUME}" if suggest else ""))


def _summary(error: BaseException, limit: int = 240) -> str:
    """The error's message on one line (torch's span several), cut to ``limit`` characters."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def gather_rng_states(info: DistInfo) -> list[dict]:
    """Every process's RNG states (rank order), so each resumes its own dropout / drop-path stream."""
    return all_gather_objects(rng_state(), info)


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

    def resume(self, enabled: bool, device: torch.device | None = None, seed: int = 0, config=None) -> dict:
        """Load ``last.pt`` when ``enabled`` and present; returns its counters, or ``{}`` for a fresh start.

        Every process must call it. Rank 0 decides whether ``last.pt`` is there and whether ``config`` may
        resume it, and tells the others, so every process takes the same branch or raises the same error.
        A fresh start truncates an old log in the folder and seeds every RNG with ``seed + rank`` (streams
        differ per process); a resume restores this process's RNG states and cuts the log after the epoch
        it resumes from. Everything is read onto the CPU (RNG states must stay there); each object's
        ``load_state_dict`` moves its tensors to its own device (modules copy into their parameters,
        optimizers cast their state to each parameter's device). ``device`` is not used; it is kept for
        callers of the older signature.

        Args:
            enabled: ``train.resume``; ``False`` starts over even when ``last.pt`` exists.
            seed: ``train.seed`` for a fresh start.
            config: the run's resolved config (a config dataclass). When given, a resume first compares it
                with the folder's ``config.yaml`` (:func:`.config.check_resume_config`: only ``train.epochs``
                may change, and rank 0 prints a note saying so), then ``config.yaml`` is (re)written with it,
                on a fresh start too. Without it, write ``config.yaml`` yourself, after this call.

        Raises:
            ResumeError: the config changed in a way a resume cannot follow, or ``last.pt`` cannot be read
                (truncated, corrupt) or does not fit these objects (a changed model or optimizer); the
                one-line message names the folder or file and suggests ``--no-resume``.
        """
        path = self.folder.last_state
        verdict = self._decide(enabled, config) if self.info.is_main else None
        found, note, refusal = broadcast_object(verdict, self.info)
        if refusal:
            raise ResumeError(self.folder.path, refusal, suggest=False)
        if config is not None:
            self.folder.write_config(config)
        if not found:
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
            if note:
                print(f"note: {note}")
        return counters

    def _decide(self, enabled: bool, config) -> tuple[bool, str | None, str | None]:
        """Rank 0's verdict: ``(resume?, note on an allowed config change, why the config refuses a resume)``."""
        if not (enabled and self.folder.last_state.is_file()):
            return False, None, None
        if config is None:
            return True, None, None
        try:
            saved = self.folder.read_config()
            note = None if saved is None else check_resume_config(saved, to_dict(config))
        except ValueError as error:
            return True, None, str(error)
        return True, note, None

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
