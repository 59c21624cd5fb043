"""The tournament's ranking and its markdown table."""

from __future__ import annotations

from simpool.experiments.tournament_report import rank, to_csv, to_markdown


def test_rank_orders_by_accuracy_ties_share_and_failures_last():
    rows = [
        {"pool": "a", "status": "ok", "accuracy": 50.0},
        {"pool": "b", "status": "failed", "accuracy": ""},
        {"pool": "c", "status": "ok", "accuracy": 70.0},
        {"pool": "d", "status": "ok", "accuracy": 50.0},
    ]
    assert [(r["pool"], r["rank"]) for r in rank(rows)] == [("c", 1), ("a", 2), ("d", 2), ("b", "")]


def test_tables_of_a_finished_and_a_failed_entrant():
    ok = {"pool": "gap", "method": "GAP", "group": 1, "status": "ok", "accuracy": 62.5, "final_loss": 1.5}
    ok.update(pool_params=0, seconds=3.4, error="")
    failed = {"pool": "gem:p=-1", "method": "GeM", "group": 1, "status": "failed", "error": "ValueError: p"}
    failed.update(accuracy="", final_loss="", pool_params="", seconds="")
    rows = rank([failed, ok])
    assert to_markdown(rows).splitlines()[2:] == [
        "| 1 | `gap` | GAP | 1 | 62.50 | 0 | 3 | ok |",
        "|  | `gem:p=-1` | GeM | 1 | - |  | - | failed: ValueError: p |",
    ]
    assert to_csv(rows).splitlines() == [
        "rank,pool,method,group,status,accuracy,final_loss,pool_params,seconds,error",
        "1,gap,GAP,1,ok,62.5,1.5,0,3.4,",
        ",gem:p=-1,GeM,1,failed,,,,,ValueError: p",
    ]
