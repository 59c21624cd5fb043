"""SimPool - CLS along the curves of several seeds (``simpool demo --pair``): per point, its mean, Student-t 95%
interval and wording, by hand; the table, the figure and the refusals of unlike runs."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image

from simpool.cli import main
from simpool.experiments.demo.paired_curves import CURVE_METRICS, curve_differences
from tests.conftest import DEMO_REPORTS as REPORTS
from tests.conftest import write_report_runs as write_runs

T975_2 = 4.302652729749462  # Student t quantile 0.975 for 2 degrees of freedom
# SimPool - CLS per seed at the three curve points: equal, SimPool ahead (8, 10, 12), CLS ahead (-4, -5, -6)
DIFFERENCES = ((0.0, 0.0, 0.0), (8.0, 10.0, 12.0), (-4.0, -5.0, -6.0))


def curves(seed: int, steps=(0, 50, 100)) -> dict:
    """Both models' curve points for ``seed``: CLS at 30 + point, SimPool ``DIFFERENCES`` above it."""
    points = {"cls": [], "simpool": []}
    for index, step in enumerate(steps):
        cls = 30.0 + index
        for kind, value in (("cls", cls), ("simpool", cls + DIFFERENCES[index][seed])):
            points[kind].append({"step": step, "epoch": step / 50} | {metric: value for metric in CURVE_METRICS})
    return points


def with_curves(seed: int, **kwargs) -> dict:
    levels = {"uniform": {"MaxBoxAccV2": 10.0 + seed, "PxAP": 5.0}, "centre": {"MaxBoxAccV2": 12.0}}
    return {**REPORTS[seed], "curves": curves(seed, **kwargs), "curve_subset": {"split": "val", "baselines": levels}}


def test_curve_differences_by_hand():
    paired = curve_differences([with_curves(seed) for seed in range(3)])
    assert paired["split"] == "val" and [p["step"] for p in paired["points"]] == [0, 50, 100]
    assert [p["epoch"] for p in paired["points"]] == [0.0, 1.0, 2.0]
    for metric in CURVE_METRICS:
        equal, ahead, behind = (p[metric] for p in paired["points"])
        assert equal["mean"] == 0.0 and equal["ci95"] == [0.0, 0.0] and equal["wording"] == "no consistent difference"
        half = T975_2 * 2 / math.sqrt(3)  # 10 +- t * sd 2 / sqrt(3)
        assert ahead["mean"] == 10.0 and ahead["ci95"] == pytest.approx([10 - half, 10 + half], abs=1e-12)
        assert ahead["wording"] == "SimPool higher" and (ahead["cls"], ahead["simpool"]) == (31.0, 41.0)
        assert ahead["per_seed"] == {"cls": [31.0] * 3, "simpool": [39.0, 41.0, 43.0]}
        half = T975_2 * 1 / math.sqrt(3)  # 2.48: -5 +- 2.48 excludes 0
        assert behind["mean"] == -5.0 and behind["ci95"] == pytest.approx([-5 - half, -5 + half], abs=1e-12)
        assert behind["wording"] == "CLS higher"
        assert paired["readings"][metric] == {
            "SimPool higher": [1.0],
            "CLS higher": [2.0],
            "no consistent difference": [0.0],
        }
    # the maps that ignore the image, on the curves' images, averaged over runs where every run kept the metric
    assert paired["levels"] == {"uniform": {"MaxBoxAccV2": 11.0, "PxAP": 5.0}, "centre": {"MaxBoxAccV2": 12.0}}
    assert curve_differences(REPORTS) is None  # runs without curves: nothing to pair


def test_pair_writes_the_curves_their_table_and_figure(tmp_path, capsys):
    runs = write_runs(tmp_path, [with_curves(seed) for seed in range(3)])
    out = tmp_path / "paired"
    assert main(["demo", "--pair", *runs, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    paired = json.loads((out / "paired.json").read_text())
    assert [p["MaxBoxAccV2"]["mean"] for p in paired["curves"]["points"]] == [0.0, 10.0, -5.0]
    half = T975_2 * 2 / math.sqrt(3)
    low, high = 10 - half, 10 + half
    ahead = f"+10.0 [{low:.1f}, {high:.1f}] (+)"
    assert "| 0.00 | +0.000 [0.000, 0.000] | +0.0 [0.0, 0.0] | +0.0 [0.0, 0.0] |" in printed
    assert f"| 1.00 | +10.000 [{low:.3f}, {high:.3f}] (+) | {ahead} | {ahead} |" in printed
    low, high = -5 - T975_2 / math.sqrt(3), -5 + T975_2 / math.sqrt(3)  # -7.484, -2.516
    behind = f"-5.0 [{low:.1f}, {high:.1f}] (-)"
    assert f"| 2.00 | -5.000 [{low:.3f}, {high:.3f}] (-) | {behind} | {behind} |" in printed
    with Image.open(out / "paired_curves.png") as figure:
        assert figure.size[0] > figure.size[1] > 300  # four panels wide, two rows high
    assert paired["curves_figure"] == str(out / "paired_curves.png")


@pytest.mark.parametrize(
    "reports, message",
    [
        ([with_curves(0), REPORTS[1]], "some runs have training curves and some not"),
        ([with_curves(0), with_curves(1, steps=(0, 60, 100))], "the run of seed 1 has other curve points"),
    ],
)
def test_pairing_refuses_unlike_curves_in_one_line(tmp_path, capsys, reports, message):
    runs = write_runs(tmp_path, reports)
    assert main(["demo", "--pair", *runs, "--out", str(tmp_path / "paired")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
