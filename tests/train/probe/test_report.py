"""What a trained grid reports: each head's best lr, the selection, the tables beside the baselines (the scores of
a run are recomputed by hand in ``test_run.py``)."""

from __future__ import annotations

import re

from simpool.train.probe.attention import LEARNED_RULE
from simpool.train.probe.report import attention_lines, baselines_table, best_per_head, heads_table, selection_line


def test_each_head_keeps_its_best_held_out_lr_the_first_of_equals():
    entries = [
        {"head": "linear", "lr": 0.001, "holdout_top1": 50.0},
        {"head": "linear", "lr": 0.01, "holdout_top1": 75.0},
        {"head": "simpool", "lr": 0.001, "holdout_top1": 80.0},
        {"head": "simpool", "lr": 0.01, "holdout_top1": 80.0},
    ]
    assert best_per_head(entries) == {"linear": 1, "simpool": 2}


def test_the_table_and_the_selection_line():
    head = {"head": "simpool", "lr": 0.001, "params": 2442, "gflops": 1.5e-5, "holdout_top1": 75.0}
    scores = {"MaxBoxAccV2": 41.25, "PxAP": 30.5, "mask_mass": 0.5}
    result = {
        "heads": [{**head, "test_top1": 62.5, "test_top5": 100.0, **scores}],
        "selected": {"head": "simpool", "lr": 0.001, "test_top1": 62.5, "test_top5": 100.0},
    }
    lines = heads_table(result).splitlines()
    header = ["head", "lr", "wd", "params", "GFLOPs", "held-out top1", "test top1", "test top5", "MaxBoxAccV2"]
    assert re.split(r"\s{2,}", lines[0].strip()) == [*header, "PxAP", "mask mass"]
    row = ["simpool", "0.001", "-", "2442", "1.5e-05", "75.00", "62.50", "100.00", "41.25", "30.50", "0.50"]
    assert lines[2].split() == row
    assert selection_line(result) == "selected on the held-out split: simpool lr 0.001: test top-1 62.50, top-5 100.00"


def test_the_baselines_beside_the_heads():
    baselines = {
        "uniform": {"MaxBoxAccV2": 20.0, "PxAP": 18.0, "mask_mass": 0.2},
        "centre": {"MaxBoxAccV2": 43.0, "PxAP": 25.0, "mask_mass": 0.3},
        "box_prior": {"MaxBoxAccV2": 42.0, "PxAP": 27.5, "mask_mass": 0.3},
        "mean_map/simpool": {"MaxBoxAccV2": 40.0, "PxAP": 26.0, "mask_mass": 0.25},
    }
    result = {
        "heads": [
            {"head": "linear", "MaxBoxAccV2": 30.0, "PxAP": 28.0},
            {"head": "simpool", "MaxBoxAccV2": 45.0, "PxAP": 27.0},
        ],
        "baselines": baselines,
        "box_prior": {"split": "train", "metadata": "bench/metadata/train", "from": "masks"},
        "attention_rule": LEARNED_RULE,
    }
    lines = baselines_table(result).splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == ["baseline", "MaxBoxAccV2", "PxAP", "mask mass"]
    assert [line.split() for line in lines[2:]] == [
        ["uniform", "20.00", "18.00", "0.20"],
        ["centre", "43.00", "25.00", "0.30"],
        ["box_prior", "42.00", "27.50", "0.30"],
        ["mean_map/simpool", "40.00", "26.00", "0.25"],
    ]
    # the strongest of uniform, centre and box_prior per metric (a head's own mean map is not one of them)
    assert attention_lines(result) == [
        "box_prior: the mean object of the train split (masks, bench/metadata/train)",
        "MaxBoxAccV2: strongest image-independent baseline centre 43.00; heads above it: simpool",
        "PxAP: strongest image-independent baseline box_prior 27.50; heads above it: linear",
        LEARNED_RULE,
    ]
