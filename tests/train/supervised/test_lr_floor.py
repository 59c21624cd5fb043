"""``optim.lr`` below the schedule's floor is refused: timm's schedule would train at the floor, not at the rate
asked for (before: ``optim.lr=0`` trained at ``sched.min_lr``, 1e-5)."""

from __future__ import annotations

import pytest

from simpool.cli.main import main
from tests.train.conftest import overrides


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            dict(optim__lr=0.0),
            "optim.lr=0 is below sched.min_lr=1e-05, so the schedule would train at 1e-05: set "
            "sched.min_lr at or below optim.lr (e.g. sched.min_lr=0)",
        ),
        (
            dict(optim__lr=1e-7, sched__min_lr=0.0, sched__warmup_epochs=1),
            "optim.lr=1e-07 is below "
            "sched.warmup_lr=1e-06, so the schedule would train at 1e-06: set sched.warmup_lr at or below optim.lr "
            "(e.g. sched.warmup_lr=0)",
        ),
    ],
)
def test_a_learning_rate_below_the_schedules_floor_is_refused(tiny_data, tmp_path, capsys, extra, message):
    assert main(["train", *overrides(tiny_data, tmp_path / "runs", train__epochs=1, **extra)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "simpool train: error: " + message
    assert not (tmp_path / "runs" / "run" / "last.pt").exists()
