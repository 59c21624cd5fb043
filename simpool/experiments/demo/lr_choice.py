"""Each arm's learning rate chosen on the validation split (``simpool demo --choose-lr RUN RUN ...``).

The grid is a set of finished ``simpool demo`` runs scored on ``val`` (``eval_split=val``), one setting but the
learning rate: ``simpool demo lr=L eval_split=val --out DIR`` for each ``L``. Each run trains both arms, so one run
per learning rate gives both arms their grid point. Each arm's learning rate is the one of highest ``val`` top-1 on
``original`` (the accuracy each arm is trained for, not the attention the study then compares; a tie goes to the
smaller rate). The choice is written as the overrides of the final runs (``cls_lr=... simpool_lr=...``), which are
then scored on ``test`` once.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...evaluate.attention_quality import strongest_baseline
from ...evaluate.baselines import FIXED
from ...utils import write_json
from .config import MODELS, DemoConfig
from .seeds import first_difference

CRITERION = "acc_original"  # val top-1 on the bench's original images
SHOWN = ("acc_original", "acc_mixed_rand", "MaxBoxAccV2")  # in the table, for the reader; only CRITERION chooses
LR_KEYS = ("lr", *(f"{kind}_lr" for kind in MODELS))  # the config fields a grid may vary


def arm_lr(config: dict, kind: str) -> float:
    """The learning rate the arm ``kind`` of a report's ``config`` trained at (:meth:`DemoConfig.arm_lr`)."""
    return DemoConfig(**config).arm_lr(kind)


def read_grid(run_dirs: list[str | Path]) -> list[tuple[str, dict]]:
    """``(run, report)`` of each run folder, checked: scored on ``val``, one setting but the learning rates, no
    learning rate of an arm twice.

    Raises:
        ValueError: one line naming the run and what is wrong.
    """
    if len(run_dirs) < 2:
        raise ValueError("--choose-lr needs at least two run folders (simpool demo lr=L eval_split=val --out DIR)")
    grid, seen = [], {kind: {} for kind in MODELS}
    for run in map(str, run_dirs):
        path = Path(run) / "report.json"
        if not path.is_file():
            raise ValueError(f"{run} has no report.json: pass simpool demo output folders")
        report = json.loads(path.read_text())
        config = report["config"]
        if config.get("eval_split") != "val":
            raise ValueError(
                f"{run} was scored on {config.get('eval_split')!r}: choose learning rates on runs with "
                "eval_split=val, and score the chosen ones on test once"
            )
        if grid and (difference := first_difference(grid[0][1]["config"], config, LR_KEYS)):
            raise ValueError(f"{run} differs from {grid[0][0]} in {difference}: a grid varies the learning rate alone")
        for kind in MODELS:
            lr = arm_lr(config, kind)
            if lr in seen[kind]:
                raise ValueError(f"{run} and {seen[kind][lr]} both train {kind} at lr {lr:g}: one run per rate")
            seen[kind][lr] = run
        grid.append((run, report))
    return grid


def grid_point(run: str, report: dict, kind: str) -> dict:
    """One arm of one grid run: its rate, its ``SHOWN`` scores and, beside its MaxBoxAccV2, the maps that ignore the
    image on the same ``val`` images: the strongest fixed map (``strongest_map``) and the arm's own mean map."""
    baselines = report["baselines"]
    fixed = {name: baselines[name] for name in FIXED}
    return {
        "lr": arm_lr(report["config"], kind),
        "run": run,
        **{metric: report["results"][kind][metric] for metric in SHOWN},
        "strongest_map": strongest_baseline(fixed)[1],
        "mean_map": baselines["mean_map"][kind]["MaxBoxAccV2"],
    }


def choose_lr(run_dirs: list[str | Path], out: str | Path | None = None) -> dict:
    """Each arm's learning rate (:func:`read_grid`): ``{"criterion", "split", "config", "arms": {kind: {"grid":
    [{"lr", "run", SHOWN...}] by rate, "lr"}}, "overrides", "table"}``; written to ``out/lr_choice.json`` when
    ``out`` is given."""
    grid = read_grid(run_dirs)
    arms = {}
    for kind in MODELS:
        points = sorted((grid_point(run, report, kind) for run, report in grid), key=lambda point: point["lr"])
        best = max(points, key=lambda point: (point[CRITERION], -point["lr"]))
        arms[kind] = {"grid": points, "lr": best["lr"]}
    config = {key: value for key, value in grid[0][1]["config"].items() if key not in LR_KEYS}
    choice = {
        "criterion": CRITERION,
        "split": "val",
        "config": config,
        "arms": arms,
        "overrides": " ".join(f"{kind}_lr={arms[kind]['lr']:g}" for kind in MODELS),
    }
    choice["table"] = lr_table(choice)
    if out is not None:
        choice["lr_choice_json"] = str(write_json(Path(out) / "lr_choice.json", choice))
    return choice


def lr_table(choice: dict) -> str:
    """Markdown: per arm and learning rate, the ``val`` scores, the chosen rate marked; then the overrides."""
    lines = [f"Scores on {choice['split']}; each arm's rate chosen by {choice['criterion']}.", ""]
    header = [*SHOWN, "strongest map ignoring the image", "its own mean map"]
    lines += [f"| arm | lr | {' | '.join(header)} | chosen |", "|---|---|" + "---|" * len(header) + "---|"]
    for kind, arm in choice["arms"].items():
        for point in arm["grid"]:
            cells = [f"{point[m]:.3f}" if m.startswith("acc_") else f"{point[m]:.1f}" for m in SHOWN]
            cells += [f"{point['strongest_map']:.1f}", f"{point['mean_map']:.1f}"]
            mark = "yes" if point["lr"] == arm["lr"] else ""
            lines.append(f"| {kind} | {point['lr']:g} | {' | '.join(cells)} | {mark} |")
    lines.append(f"\nthe final runs: simpool demo ... {choice['overrides']}")
    return "\n".join(lines)
