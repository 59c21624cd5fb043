"""``simpool tournament`` end to end on a tiny bench, and its ranking."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from simpool.cli import main
from simpool.experiments.tournament import DATASETS, TournamentConfig, parse_pool, rank, to_markdown, train_and_evaluate


def test_rank_orders_by_accuracy_ties_share_and_failures_last():
    rows = [
        {"pool": "a", "status": "ok", "accuracy": 50.0},
        {"pool": "b", "status": "failed", "accuracy": ""},
        {"pool": "c", "status": "ok", "accuracy": 70.0},
        {"pool": "d", "status": "ok", "accuracy": 50.0},
    ]
    assert [(r["pool"], r["rank"]) for r in rank(rows)] == [("c", 1), ("a", 2), ("d", 2), ("b", "")]


def test_parse_pool_arguments():
    assert parse_pool("framework:attention=sigmoid,num_heads=4") == (
        "framework",
        {"attention": "sigmoid", "num_heads": 4},
    )
    assert parse_pool("gem") == ("gem", {})
    with pytest.raises(ValueError, match="valid pools"):
        parse_pool("nope:x=1")
    with pytest.raises(ValueError, match="pool 'gem:p': expected key=value, got 'p'"):
        parse_pool("gem:p")


def _read(path):
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.slow
def test_two_pool_tournament_end_to_end_with_a_failure_and_resume(tmp_path, capsys):
    out = tmp_path / "t"
    argv = ["tournament", "--pools", "gap", "simpool", "gem:p=-1", "--out", str(out), "--steps", "2",
            "--batch-size", "8", "--img-size", "16", "--train-images", "16", "--test-images", "8", "--depth", "1",
            "--device", "cpu"]  # fmt: skip
    assert main(argv) == 1  # one entrant failed
    rows = _read(out / "results.csv")
    assert {r["pool"] for r in rows} == {"gap", "simpool", "gem:p=-1"}
    assert rows[-1]["pool"] == "gem:p=-1"  # failed runs rank last
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["pool"] == "gem:p=-1" and "positive" in failed[0]["error"]
    done = [r for r in rows if r["status"] == "ok"]
    assert {r["rank"] for r in done} <= {"1", "2"} and all(0 <= float(r["accuracy"]) <= 100 for r in done)
    assert float(done[0]["accuracy"]) >= float(done[1]["accuracy"])
    by_pool = {r["pool"]: r for r in done}
    # GAP has no parameters; SimPool on the width-96 tiny ViT has LayerNorm (2 x 96) and W_q, W_k (96 x 96 each)
    assert int(by_pool["gap"]["pool_params"]) == 0
    assert int(by_pool["simpool"]["pool_params"]) == 2 * 96 + 2 * 96 * 96
    # the accuracy is the percentage of the 8 test images the trained model gets right: the same seed retrains
    # the same model, scored here
    config = TournamentConfig(**json.loads((out / "config.json").read_text()))
    data = {split: DATASETS["bench"](split, count, config) for split, count in (("train", 16), ("test", 8))}
    for pool in ("gap", "simpool"):
        again = train_and_evaluate(config, pool, data, torch.device("cpu"))
        assert float(by_pool[pool]["accuracy"]) == pytest.approx(again["accuracy"])
        assert float(by_pool[pool]["final_loss"]) == pytest.approx(again["final_loss"])
        assert again["accuracy"] * 8 / 100 == round(again["accuracy"] * 8 / 100)
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| `simpool` |" in (out / "results.md").read_text()
    # resume: finished pools are kept as they were (same seconds), the failed one is tried again
    before = {r["pool"]: r["seconds"] for r in done}
    assert main(argv) == 1
    after = {r["pool"]: r["seconds"] for r in _read(out / "results.csv") if r["status"] == "ok"}
    assert after == before
    # another config in the same folder is refused
    capsys.readouterr()
    assert main(argv[:-2] + ["--seed", "1"]) == 2  # a person's mistake: one line naming it
    assert "another config" in capsys.readouterr().err
    assert "top-1" in to_markdown(rank(done))
