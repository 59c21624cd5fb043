"""A learning-rate scheduler and when it steps, decided once.

timm's schedulers are stepped with ``step_update(num_updates=...)`` per update or ``step(epoch)`` per epoch and
can be set to any position (so a resume, even one that extends ``train.epochs``, gets the learning rate an
uninterrupted run has); torch's are stepped with ``step()`` and resume from their own state. :class:`Schedule`
reads which of the two it holds when it is built, so the engine never asks again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from timm.scheduler.scheduler import Scheduler as TimmScheduler

SCHEDULE_ON = ("update", "epoch")


@dataclass
class Schedule:
    """``scheduler`` stepped after every update (``on="update"``) or after every epoch (``on="epoch"``).

    Args:
        scheduler: a timm scheduler or a ``torch.optim.lr_scheduler`` one.
        on: ``update`` or ``epoch``.
    """

    scheduler: Any
    on: str = "update"

    def __post_init__(self) -> None:
        if self.on not in SCHEDULE_ON:
            raise ValueError(f"schedule on={self.on!r}; valid: {', '.join(SCHEDULE_ON)}")
        self.positional = isinstance(self.scheduler, TimmScheduler)  # set to a position, or stepped by one

    def after_update(self, update: int) -> None:
        """Called after update ``update`` (counted from 1)."""
        if self.on != "update":
            return
        if self.positional:
            self.scheduler.step_update(num_updates=update)
        else:
            self.scheduler.step()

    def after_epoch(self, epochs_done: int) -> None:
        """Called after ``epochs_done`` epochs."""
        if self.on != "epoch":
            return
        if self.positional:
            self.scheduler.step(epochs_done)
        else:
            self.scheduler.step()

    def resume(self, update: int, epoch: int) -> None:
        """The learning rate of a resumed position (timm's, rebuilt from the current config; a torch scheduler
        resumes from the state it saved, and is left as loaded)."""
        if not self.positional:
            return
        if self.on == "update":
            self.scheduler.step_update(num_updates=update)
        else:
            self.scheduler.step(epoch)
