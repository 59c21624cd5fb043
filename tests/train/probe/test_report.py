"""What a trained grid reports: each head's best lr, the selection, the tables (the attention scores of a run are
recomputed by hand in ``test_run.py``)."""

from __future__ import annotations

import re

from simpool.train.probe.report import best_per_head, heads_table, selection_line


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
    result = {
        "heads": [{**head, "test_top1": 62.5, "test_top5": 100.0, "MaxBoxAccV2": 41.25, "mask_mass": 0.5}],
        "selected": {"head": "simpool", "lr": 0.001, "test_top1": 62.5, "test_top5": 100.0},
    }
    lines = heads_table(result).splitlines()
    header = ["head", "lr", "params", "GFLOPs", "held-out top1", "test top1", "test top5", "MaxBoxAccV2", "mask mass"]
    assert re.split(r"\s{2,}", lines[0].strip()) == header
    assert lines[2].split() == ["simpool", "0.001", "2442", "1.5e-05", "75.00", "62.50", "100.00", "41.25", "0.50"]
    assert selection_line(result) == "selected on the held-out split: simpool lr 0.001: test top-1 62.50, top-5 100.00"
