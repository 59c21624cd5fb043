"""Runs of several seeds paired (``simpool demo --pair``): SimPool - CLS per run, its mean and Student-t 95%
interval, the wording the interval allows, from hand-made reports."""

from __future__ import annotations

import json
import math
import re

import pytest

from simpool.cli import main
from simpool.experiments.demo import pair_runs, paired_differences
from simpool.experiments.demo.seeds import FINAL_METRICS, MAP_METRICS, MATCHED_METRICS
from tests.conftest import DEMO_REPORTS, demo_report, write_report_runs

T975 = {2: 4.302652729749462}  # Student t quantile 0.975 for 2 degrees of freedom
REPORTS = DEMO_REPORTS  # SimPool - CLS by seed: MaxBoxAccV2 8, 10, 12; PxAP -1, 2, 5; CorLoc -5, -6, -7


def test_paired_differences_by_formula():
    paired = paired_differences(REPORTS, ("MaxBoxAccV2", "PxAP", "CorLoc", "acc_original"))
    # MaxBoxAccV2: mean 10, sd 2: 10 +- t * 2 / sqrt(3)
    box = paired["MaxBoxAccV2"]
    half = T975[2] * 2 / math.sqrt(3)
    assert box["mean"] == 10.0 and box["n"] == 3 and box["ci95"] == pytest.approx([10 - half, 10 + half], abs=1e-12)
    assert box["wording"] == "SimPool higher" and (box["cls"], box["simpool"]) == (40.0, 50.0)
    assert box["per_seed"] == [
        {"seed": 0, "cls": 40.0, "simpool": 48.0, "difference": 8.0},
        {"seed": 1, "cls": 40.0, "simpool": 50.0, "difference": 10.0},
        {"seed": 2, "cls": 40.0, "simpool": 52.0, "difference": 12.0},
    ]
    # PxAP: mean 2, sd 3: the interval 2 +- 7.45 covers 0
    half = T975[2] * 3 / math.sqrt(3)
    assert paired["PxAP"]["ci95"] == pytest.approx([2 - half, 2 + half], abs=1e-12)
    assert paired["PxAP"]["wording"] == "no consistent difference"
    # CorLoc: mean -6, sd 1
    half = T975[2] / math.sqrt(3)
    assert paired["CorLoc"]["ci95"] == pytest.approx([-6 - half, -6 + half], abs=1e-12)
    assert paired["CorLoc"]["wording"] == "CLS higher"
    # equal in every run: an interval of width 0 at 0
    assert (
        paired["acc_original"]["ci95"] == [0.0, 0.0] and paired["acc_original"]["wording"] == "no consistent difference"
    )
    # another section of the report: each model at initialisation
    init = paired_differences(REPORTS, ("MaxBoxAccV2",), ("baselines", "init"))["MaxBoxAccV2"]
    assert init["mean"] == 1.0 and init["ci95"] == pytest.approx(
        [1 - T975[2] / math.sqrt(3), 1 + T975[2] / math.sqrt(3)]
    )
    with pytest.raises(ValueError, match="the report of seed 0 has no results/cls/PxAP"):
        paired_differences([{"config": {"seed": 0}, "results": {"cls": {}}}], ("PxAP",))


def test_pair_runs_writes_paired_json_and_the_table(tmp_path, capsys):
    runs = write_report_runs(tmp_path, REPORTS)
    out = tmp_path / "paired"
    assert main(["demo", "--pair", *runs, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    paired = json.loads((out / "paired.json").read_text())
    assert paired == json.loads(json.dumps(pair_runs(runs)))  # what pair_runs gives, without writing
    assert [run["seed"] for run in paired["runs"]] == [0, 1, 2] and "seed" not in paired["config"]
    assert set(paired["final"]) == set(FINAL_METRICS) and set(paired["matched"]) == set(MATCHED_METRICS)
    assert set(paired["init"]) == set(paired["mean_map"]) == set(MAP_METRICS)
    assert paired["matched"]["step"]["mean"] == 5 - 20 and paired["matched"]["MaxBoxAccV2"]["mean"] == 10.0
    assert paired["matched_level"]["mean"] == pytest.approx(0.51)
    # the maps that ignore the image: their mean and interval over runs (uniform's MaxBoxAccV2: 20, 21, 22)
    uniform = paired["baselines"]["uniform"]["MaxBoxAccV2"]
    assert uniform["mean"] == 21.0 and uniform["ci95"] == pytest.approx(
        [21 - T975[2] / math.sqrt(3), 21 + T975[2] / math.sqrt(3)]
    )
    # each model minus the strongest of them in its run (MaxBoxAccV2: box_prior's 22 in every run; PxAP: box_prior's
    # 13, 13 and centre's 14)
    margins = paired["over_strongest_baseline"]
    assert margins["cls"]["MaxBoxAccV2"] == {"mean": 18.0, "ci95": [18.0, 18.0], "n": 3, "wording": "above"}
    assert margins["simpool"]["MaxBoxAccV2"]["mean"] == 28.0
    assert margins["cls"]["PxAP"]["mean"] == pytest.approx((17 + 17 + 16) / 3)
    assert paired["table"] in printed and f"paired: {out / 'paired.json'}" in printed
    half = T975[2] * 2 / math.sqrt(3)
    assert f"| MaxBoxAccV2 | 40.0 | 50.0 | 10.0 | [{10 - half:.1f}, {10 + half:.1f}] | SimPool higher |" in printed
    assert "| uniform | 21.0 [18.5, 23.5] |" in printed  # 21 +- 2.48


@pytest.mark.parametrize(
    "reports, message",
    [
        ([REPORTS[0], demo_report(1, (1, 1, 1), epochs=3.0)], "differs from .*run0 in epochs \\(3.0 against 2.0\\)"),
        ([REPORTS[0], REPORTS[0]], "run0 and .*run1 have the same seed 0"),
        ([{k: v for k, v in REPORTS[0].items() if k != "baselines"}], "has no baselines: a report from an older"),
        ([REPORTS[0], {**REPORTS[1], "matched": None}], "some runs have a matched comparison and some not"),
    ],
)
def test_pairing_refuses_unlike_runs_in_one_line(tmp_path, capsys, reports, message):
    runs = write_report_runs(tmp_path, reports)
    assert main(["demo", "--pair", *runs, "--out", str(tmp_path / "paired")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
    assert not (tmp_path / "paired").exists()


def test_pair_takes_no_overrides(tmp_path, capsys):
    runs = write_report_runs(tmp_path, REPORTS)
    assert main(["demo", "--quick", "--pair", *runs]) == 2
    assert "--pair reads finished runs" in capsys.readouterr().err
