"""``simpool board``: probe runs' results.json (written here with the keys of simpool/train/probe/report.py) in one
board, seeds of a backbone as mean ± std, and ``--check`` failing on a stale board.md, however the paths are spelt."""

from __future__ import annotations

import csv
import json

import pytest

from simpool.cli.main import main
from simpool.experiments.board import baseline_levels, board_markdown, figure_points, gather


def _head(head, lr, holdout, top1, params, **extra):
    row = dict(head=head, label=head, lr=lr, weight_decay=0.05, options={}, holdout_top1=holdout, test_top1=top1)
    return row | dict(test_top5=100.0, params=params, test_sets={"val": {"top1": top1}}, **extra)


def _knn(holdout, top1):
    return {"head": "knn", "label": "knn (k=20)", "holdout_top1": holdout, "test_top1": top1, "test_sets": {}}


def _write(folder, model, checkpoint, heads, knn=None, baselines=None):
    folder.mkdir()
    result = {"finished": True, "backbone": {"model": model, "checkpoint": checkpoint}, "heads": heads}
    if baselines is not None:
        result["baselines"] = baselines
    if knn is not None:
        result["knn"] = knn
    (folder / "results.json").write_text(json.dumps(result))
    return folder


# the maps that ignore the image, as the probe scores them on its test images (mask_mass is not on the board)
BASELINES = {
    "uniform": {"MaxBoxAccV2": 14.0, "PxAP": 12.0, "mask_mass": 0.1},
    "centre": {"MaxBoxAccV2": 11.5, "PxAP": 20.25, "mask_mass": 0.2},
    "mean_map/ep": {"MaxBoxAccV2": 12.0, "PxAP": 18.0, "mask_mass": 0.15},
}

# three probe seeds of one DINO backbone; seed 2 selected simpool at another lr
SEEDS = [
    (58.5, 0.003, 70.0, 68.0, 55.5, 49.0),
    (58.5, 0.003, 71.0, 69.0, 56.5, 50.0),
    (61.5, 0.001, 72.0, 70.0, 57.5, 51.0),
]


@pytest.fixture
def runs(tmp_path):
    dino = [
        _write(
            tmp_path / f"probe_dino_s{seed}",
            "vit_small_patch16_224",
            "/ckpt/dino.safetensors",
            [
                _head("linear", 0.001, 60.0, linear, 3850),
                _head("simpool", lr, holdout, top1, 300000, MaxBoxAccV2=box, PxAP=40.0),
            ],
            knn=_knn(50.0, knn),
        )
        for seed, (linear, lr, holdout, top1, box, knn) in enumerate(SEEDS)
    ]
    sup = _write(
        tmp_path / "probe_sup",
        "resnet50",
        None,
        [_head("ep", 0.01, 65.0, 64.0, 20000, MaxBoxAccV2=30.25, PxAP=20.5)],
        baselines=BASELINES,
    )
    return [sup, *reversed(dino)]  # given out of order: the board sorts the runs by path


# by hand: linear 58.5, 58.5, 61.5 -> mean 59.5, deviations -1, -1, 2, std sqrt(6 / 2) = 1.73; simpool 68, 69, 70
# -> 69 ± 1; ep one run: no std
EXPECTED = "\n".join(
    [
        "# Probe board",
        "",
        "| backbone | head | runs | lr | weight decay | held-out top-1 | top-1 | MaxBoxAccV2 | PxAP | params |",
        "|---|---|---|---|---|---|---|---|---|---|",
        "| vit_small_patch16_224 (dino.safetensors) | linear | 3 | 0.001 | 0.05 | 60.00 ± 0.00 | 59.50 ± 1.73 | - | - "
        "| 3850 |",
        "| vit_small_patch16_224 (dino.safetensors) | simpool | 3 | 0.003 / 0.001 | 0.05 | 71.00 ± 1.00 | 69.00 ± 1.00 "
        "| 56.50 ± 1.00 | 40.00 ± 0.00 | 300000 |",
        "| vit_small_patch16_224 (dino.safetensors) | knn (k=20) | 3 | - | - | 50.00 ± 0.00 | 50.00 ± 1.00 | - | - "
        "| - |",
        "| resnet50 | ep | 1 | 0.01 | 0.05 | 65.00 | 64.00 | 30.25 | 20.50 | 20000 |",
        "| resnet50 | baseline: uniform | 1 | - | - | - | - | 14.00 | 12.00 | - |",
        "| resnet50 | baseline: centre | 1 | - | - | - | - | 11.50 | 20.25 | - |",
        "| resnet50 | baseline: mean_map/ep | 1 | - | - | - | - | 12.00 | 18.00 | - |",
        "",
        "mean ± sample std over the runs of a backbone and head. Runs: `../probe_dino_s0`, `../probe_dino_s1`, "
        "`../probe_dino_s2`, `../probe_sup`",
        "",
    ]
)


def test_the_board_gives_each_backbone_and_head_the_mean_and_std_over_its_runs(runs, tmp_path):
    rows = gather(runs, tmp_path / "board")
    assert board_markdown(rows) == EXPECTED
    assert baseline_levels(rows) == {"resnet50": 14.0}  # the strongest of uniform and centre (no model needed)
    dino = {"backbone": "vit_small_patch16_224 (dino.safetensors)", "label": "simpool", "x": 56.5, "y": 69.0}
    assert figure_points(rows) == [
        dino | {"xerr": 1.0, "yerr": 1.0},  # the sample std over the three seeds
        {"backbone": "resnet50", "label": "ep", "x": 30.25, "y": 64.0, "xerr": 0.0, "yerr": 0.0},
    ]


def test_board_writes_md_csv_png_and_check_fails_when_stale(runs, tmp_path, capsys):
    out = tmp_path / "board"
    assert main(["board", *map(str, runs), "--out", str(out)]) == 0
    assert (out / "board.md").read_text() == EXPECTED
    with open(out / "board.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [(r["label"], r["test_top1"], r["MaxBoxAccV2"], r["run"]) for r in table] == [
        ("linear", "58.5", "", "../probe_dino_s0"),
        ("simpool", "68.0", "55.5", "../probe_dino_s0"),
        ("knn (k=20)", "49.0", "", "../probe_dino_s0"),
        ("linear", "58.5", "", "../probe_dino_s1"),
        ("simpool", "69.0", "56.5", "../probe_dino_s1"),
        ("knn (k=20)", "50.0", "", "../probe_dino_s1"),
        ("linear", "61.5", "", "../probe_dino_s2"),
        ("simpool", "70.0", "57.5", "../probe_dino_s2"),
        ("knn (k=20)", "51.0", "", "../probe_dino_s2"),
        ("ep", "64.0", "30.25", "../probe_sup"),
        ("baseline: uniform", "", "14.0", "../probe_sup"),
        ("baseline: centre", "", "11.5", "../probe_sup"),
        ("baseline: mean_map/ep", "", "12.0", "../probe_sup"),
    ]
    assert (out / "board.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert main(["board", *map(str, runs), "--out", str(out), "--check"]) == 0  # true: passes
    # a run changes after the board was made: the committed board.md is stale
    result = json.loads((runs[0] / "results.json").read_text())
    result["heads"][0]["test_top1"] = 65.0
    (runs[0] / "results.json").write_text(json.dumps(result))
    assert main(["board", *map(str, runs), "--out", str(out), "--check"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{out / 'board.md'} differs from what the runs give: rerun without --check"]


def test_check_does_not_depend_on_how_the_paths_are_spelt(runs, tmp_path, monkeypatch, capsys):
    assert main(["board", *map(str, runs), "--out", str(tmp_path / "board")]) == 0
    monkeypatch.chdir(tmp_path)  # relative paths, a results.json file, a trailing slash, a detour
    spelt = [f"{runs[0].name}/", str(runs[1] / "results.json"), f"board/../{runs[2].name}", f"./{runs[3].name}"]
    assert main(["board", *spelt, "--out", "./board/", "--check"]) == 0
    assert main(["board", *spelt[:3], "--out", "./board/", "--check"]) == 1  # a run left out: stale


def test_a_folder_without_results_is_one_line(tmp_path, capsys):
    assert main(["board", str(tmp_path), "--out", str(tmp_path / "b")]) == 2
    assert f"{tmp_path}: no results.json there" in capsys.readouterr().err


def test_runs_named_alike_are_one_backbone_whatever_their_checkpoints(tmp_path, capsys):
    # two backbone seeds, each its own checkpoint: without names two backbones, with one name one backbone of 2 runs
    runs = [
        _write(
            tmp_path / f"sup_s{seed}", "vit_tiny", f"/ckpt/sup_s{seed}.safetensors", [_head("ep", 0.01, 60, top1, 9)]
        )
        for seed, top1 in enumerate((60.0, 64.0))
    ]
    plain = gather(runs, tmp_path / "board")
    assert sorted({row["backbone"] for row in plain}) == [
        "vit_tiny (sup_s0.safetensors)",
        "vit_tiny (sup_s1.safetensors)",
    ]
    named = gather([f"supervised={run}" for run in runs], tmp_path / "board")
    assert "| supervised | ep | 2 | 0.01 | 0.05 | 60.00 ± 0.00 | 62.00 ± 2.83 |" in board_markdown(named)
    out = tmp_path / "board"
    assert main(["board", *(f"supervised={run}" for run in runs), "--out", str(out)]) == 0
    assert main(["board", *(f"supervised={run}" for run in runs), "--out", str(out), "--check"]) == 0
    assert main(["board", *map(str, runs), "--out", str(out), "--check"]) == 1  # other names: another board
    capsys.readouterr()
    assert main(["board", f"a={runs[0]}", f"b={runs[0]}", "--out", str(out)]) == 2
    assert "is given twice, as a and as b" in capsys.readouterr().err
    assert main(["board", f"={runs[0]}", "--out", str(out)]) == 2
    assert "give NAME=RUN with a name" in capsys.readouterr().err


def test_a_constant_map_is_unscored_on_the_board_also_in_older_results(tmp_path):
    # gap's attention is uniform: older results.json scored it MaxBoxAccV2 0 with the uniform map's mask mass
    old_gap = _head(
        "gap", 0.01, 50, 50, 9, MaxBoxAccV2=0.0, PxAP=12.61, mask_mass=0.12612231, uniform_mask_mass=0.126122314
    )
    new_gap = _head("gap", 0.01, 50, 52, 9, MaxBoxAccV2=None, PxAP=None, mask_mass=0.1261, uniform_mask_mass=0.1261)
    # a trained map that scored 0 but put more than the uniform share on the object stays scored
    zero = _head("ep", 0.01, 50, 55, 9, MaxBoxAccV2=0.0, PxAP=14.0, mask_mass=0.2, uniform_mask_mass=0.126122314)
    runs = [_write(tmp_path / "old", "vit", None, [old_gap, zero]), _write(tmp_path / "new", "vit", None, [new_gap])]
    rows = gather(runs, tmp_path / "board")
    assert sorted((row["run"], row["label"], row["MaxBoxAccV2"], row["PxAP"]) for row in rows) == [
        ("../new", "gap", None, None),
        ("../old", "ep", 0.0, 14.0),
        ("../old", "gap", None, None),
    ]
    assert [point["label"] for point in figure_points(rows)] == ["ep"]
    assert "| vit | gap | 2 | 0.01 | 0.05 | 50.00 ± 0.00 | 51.00 ± 1.41 | - | - | 9 |" in board_markdown(rows)
