"""``simpool tournament`` end to end on a tiny bench: entrants as recipes, a failure, a resume, one config per
folder."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from simpool.cli import main
from simpool.experiments.tournament import DATASETS, TournamentConfig, parse_pool, train_and_evaluate

TINY = ["steps=2", "batch_size=8", "image_size=16", "train_images=16", "test_images=8", "depth=1"]


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


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--pools", "gap", "steps=2"], "--pools steps=2: a pool is name or name:key=value"),
        (["stepz=2"], "unknown config key(s) stepz"),
        (["steps=0"], "config key 'steps' must be in [1, inf), got 0"),
        (["--pools", "nope"], "unknown pool 'nope'"),
        (["dataset=imagenet"], "unknown dataset 'imagenet'; valid: bench, fashion-mnist"),
    ],
)
def test_mistakes_are_one_line_before_any_work(tmp_path, capsys, argv, message):
    out = tmp_path / "t"
    assert main(["tournament", "--out", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def _read(path):
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_two_pool_tournament_end_to_end_with_a_failure_and_resume(tmp_path, capsys):
    out = tmp_path / "t"
    argv = ["tournament", "--pools", "gap", "simpool", "gem:p=-1", "--out", str(out), "--device", "cpu", *TINY]
    assert main(argv) == 1  # one entrant failed
    rows = _read(out / "results.csv")
    assert [r["pool"] for r in rows][-1] == "gem:p=-1"  # failed runs rank last
    assert rows[-1]["status"] == "failed" and "positive" in rows[-1]["error"]
    done = {r["pool"]: r for r in rows if r["status"] == "ok"}
    assert sorted(done) == ["gap", "simpool"]
    # GAP has no parameters; SimPool on the width-96 tiny ViT has LayerNorm (2 x 96) and W_q, W_k (96 x 96 each)
    assert int(done["gap"]["pool_params"]) == 0
    assert int(done["simpool"]["pool_params"]) == 2 * 96 + 2 * 96 * 96
    # the accuracy is the percentage of the 8 test images the trained model gets right: the same seed retrains
    # the same model, scored here; the final loss is its last update's
    config = TournamentConfig(**json.loads((out / "config.json").read_text()))
    assert (config.steps, config.image_size, config.depth) == (2, 16, 1)
    data = {split: DATASETS["bench"](split, count, config) for split, count in (("train", 16), ("test", 8))}
    again = {pool: train_and_evaluate(config, pool, data, torch.device("cpu")) for pool in done}
    for pool, row in done.items():
        assert float(row["accuracy"]) == again[pool]["accuracy"]
        assert float(row["final_loss"]) == pytest.approx(again[pool]["final_loss"], rel=1e-12)
        assert again[pool]["accuracy"] * 8 / 100 == round(again[pool]["accuracy"] * 8 / 100)
    ranks = sorted(done, key=lambda pool: -again[pool]["accuracy"])
    assert [r["pool"] for r in rows][:2] == ranks or again["gap"]["accuracy"] == again["simpool"]["accuracy"]
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| `simpool` |" in (out / "results.md").read_text()
    # resume: finished pools are kept as they were (same seconds), the failed one is tried again
    assert main(argv) == 1
    after = {r["pool"]: r["seconds"] for r in _read(out / "results.csv") if r["status"] == "ok"}
    assert after == {pool: row["seconds"] for pool, row in done.items()}
    # another config in the same folder is refused in one line
    capsys.readouterr()
    assert main([*argv, "seed=1"]) == 2
    assert "holds a tournament with another config" in capsys.readouterr().err
