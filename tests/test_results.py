"""RESULTS.md's tables are what docs/results/tables.py writes from the kept outputs; its rewriting, on made-up text."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
SCRIPT = ROOT / "docs" / "results" / "tables.py"


def _tables_module():
    """A fresh import of docs/results/tables.py (monkeypatching it leaves no other test's copy changed)."""
    spec = importlib.util.spec_from_file_location("results_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tables(monkeypatch, tmp_path):
    """docs/results/tables.py as a module, with two made-up tables and RESULTS.md pointed at a file in tmp_path."""
    module = _tables_module()
    monkeypatch.setattr(module, "TABLES", {"one": lambda: "| a |\n|---|\n| 1 |\n", "two-b": lambda: "text 2\n"})
    monkeypatch.setattr(module, "RESULTS", tmp_path / "RESULTS.md")
    return module


STALE = (
    "# Results\n\nintro\n\n<!-- table one -->\n| a |\n|---|\n| 0 |\n<!-- /table -->\n\nmiddle\n"
    "<!-- table two-b -->\n<!-- /table -->\nend\n"
)
FRESH = (
    "# Results\n\nintro\n\n<!-- table one -->\n| a |\n|---|\n| 1 |\n<!-- /table -->\n\nmiddle\n"
    "<!-- table two-b -->\ntext 2\n<!-- /table -->\nend\n"
)


def test_render_rewrites_only_the_blocks(tables):
    assert tables.render(STALE) == (FRESH, ["one", "two-b"])
    assert tables.render(FRESH) == (FRESH, [])


def test_render_refuses_unknown_and_missing_tables(tables):
    with pytest.raises(SystemExit, match="'three'; known tables: one, two-b"):
        tables.render(FRESH + "<!-- table three -->\n<!-- /table -->\n")
    with pytest.raises(SystemExit, match="no block for: two-b"):
        tables.render("<!-- table one -->\n<!-- /table -->\n")


def test_check_fails_on_a_stale_table_and_passes_once_rewritten(tables, capsys):
    tables.RESULTS.write_text(STALE)
    assert tables.main(["--check"]) == 1
    assert "tables differ from docs/results/: one, two-b" in capsys.readouterr().err
    assert tables.RESULTS.read_text() == STALE  # --check writes nothing
    assert tables.main([]) == 0
    assert tables.RESULTS.read_text() == FRESH
    assert tables.main(["--check"]) == 0


def test_results_md_matches_its_kept_outputs():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_committed_probe_board_is_what_its_kept_runs_give():
    """docs/results/probe_bench/board/board.md: ``simpool board ... --check`` on the kept results.json files."""
    from simpool.cli.main import main

    study = ROOT / "docs" / "results" / "probe_bench"
    record = json.loads((study / "study.json").read_text())["runs"]
    runs = [f"{run['name']}={study / run['name']}_s{run['seed']}" for run in record]
    assert len({run["name"] for run in record}) >= 2  # the supervised and the randomly initialised backbones
    assert main(["board", *runs, "--out", str(study / "board"), "--check"]) == 0


def _demo_report(subset_images: int, epochs: float, steps: int, maxbox: tuple[float, float], depth: int = 8) -> dict:
    """A made-up ``simpool demo`` report: curves ending at ``steps`` with MaxBoxAccV2 ``maxbox`` (CLS, SimPool)."""
    fixed = {"uniform": {"MaxBoxAccV2": 15.0}, "centre": {"MaxBoxAccV2": 12.0}, "box_prior": {"MaxBoxAccV2": 11.0}}
    point = {"step": steps, "epoch": epochs, "top1_original": 0.4, "top1_mixed_rand": 0.2, "PxAP": 20.0}
    results = {"steps": steps, "acc_original": 0.5, "acc_mixed_rand": 0.25, "MaxBoxAccV2": 30.0, "PxAP": 25.0}
    return {
        "curve_subset": {"split": "val", "images": subset_images, "baselines": fixed},
        "curves": {
            k: [{**point, "step": 0, "MaxBoxAccV2": 99.0}, {**point, "MaxBoxAccV2": value}]  # the start, then the end
            for k, value in zip(("cls", "simpool"), maxbox, strict=True)
        },
        "results": {"cls": results, "simpool": results},
        "baselines": {**fixed, "mean_map": {"cls": {"MaxBoxAccV2": 13.0}, "simpool": {"MaxBoxAccV2": 12.0}}},
        "config": {"eval_images": 2000, "eval_split": "val", "epochs": epochs, "depth": depth, "seed": 1},
        "versions": {"simpool": "0", "torch": "0", "timm": "0", "threads": 2},
        "wall_seconds": 60.0,
    }


def test_longer_schedule_reads_each_run_at_its_end_and_refuses_other_curve_images(monkeypatch):
    module = _tables_module()
    short, long = "demo_depth/depth_8/seed_1/report.json", "demo_depth/depth_8/longer/seed_1/report.json"
    reports = {short: _demo_report(400, 2.0, 625, (24.0, 18.0)), long: _demo_report(400, 4.0, 1250, (33.0, 53.0))}
    monkeypatch.setattr(module, "LONGER", ((8, 1),))
    monkeypatch.setattr(module, "load", reports.__getitem__)
    rows = [line.split(" | ") for line in module.longer_schedule().splitlines() if line.startswith("| 8 blocks")]
    assert [row[1:3] for row in rows] == [["2 epochs", "625"], ["4 epochs", "1,250"], ["4 epochs", "1,250"]]
    assert [row[6] for row in rows] == ["24.0 / 18.0", "33.0 / 53.0", "30.0 / 30.0"]
    assert rows[-1][-2:] == ["15.0", "13.0 / 12.0 |"]  # the strongest fixed map, then the longer run's mean maps
    reports[long] = _demo_report(300, 4.0, 1250, (33.0, 53.0))
    with pytest.raises(SystemExit, match="not on the same val images"):
        module.longer_schedule()
    reports[long] = _demo_report(400, 4.0, 1250, (33.0, 53.0), depth=12)
    with pytest.raises(SystemExit, match="not the run of 8 blocks, seed 1"):
        module.longer_schedule()


def test_depth_sweep_refuses_a_row_whose_runs_trained_for_another_schedule(monkeypatch):
    module = _tables_module()
    monkeypatch.setattr(module, "DEPTH_FOLDERS", (("8, 4 epochs", 8, 4.0, "made_up"),))
    monkeypatch.setattr(module, "load", lambda path: {"runs": [{"run": "a", "seed": 0}, {"run": "b", "seed": 1}]})
    configs = {"a": {"depth": 8, "epochs": 4.0}, "b": {"depth": 8, "epochs": 2.0}}
    monkeypatch.setattr(module, "load_run", lambda run: {"config": configs[run]})
    with pytest.raises(SystemExit, match="made_up: runs not of depth 8 and 4 epochs"):
        module.depth_sweep()


def test_where_groups_a_studys_runs_by_their_own_machine_and_date():
    where = _tables_module()._where
    study = {"machine": "m2", "date": "d2", "runs": [{"name": "a"}, {"name": "b"}]}
    assert where(study) == "on m2, d2"  # runs without their own record: the study's
    study["runs"] = [
        {"name": "a", "machine": "m1", "date": "d1"},
        {"name": "a", "machine": "m1", "date": "d1"},
        {"name": "b", "machine": "m1", "date": "d1"},
        {"name": "c"},
    ]
    assert where(study) == "a, b on m1, d1; c on m2, d2"  # each name once per group, groups in order of first run


def test_feature_cues_rows_name_each_backbone_with_its_intervals(monkeypatch):
    module = _tables_module()
    score = {"top1": 12.5, "low": 10.0, "high": 15.0}
    answers = {q: score for q in module.CUE_COLUMNS}
    output = {
        "command": "python docs/examples/feature_cues.py ...",
        "machine": "m",
        "date": "d",
        "bench": {"seed": 1, "image_size": 64, "num_images": 2000},
        "k": 20,
        "temperature": 0.07,
        "chance": {"class": 10.0, "photo": 5.0},
        "backbones": [
            {"name": "random", "seed": 0, "cls": answers, "patch_mean": answers},
            {
                "name": "dino",
                "checkpoint": "d.safetensors",
                "cls": answers,
                "patch_mean": {**answers, "photo_mixed_rand": {"top1": 80.0, "low": 78.25, "high": 81.75}},
            },
        ],
    }
    monkeypatch.setattr(module, "load", lambda path: output)
    lines = module.feature_cues().splitlines()
    assert lines[2] == "| random (seed 0) |" + " 12.5 [10.0, 15.0] |" * 6
    assert lines[3].startswith("| dino (`d.safetensors`) |") and "| 80.0 [78.2, 81.8] |" in lines[3]
    assert "Chance: class 10, photo 5." in module.feature_cues() and "first 2,000 `val` images" in lines[5]
