"""``docs/examples/probe_study.py``: probe runs per backbone and seed, their results kept, the board over them, and
the RESULTS table that ``docs/results/tables.py`` writes from them, on a tiny ViT and a tiny bench export."""

from __future__ import annotations

import importlib.util
import json
import runpy
from pathlib import Path

import simpool
from simpool.cli.main import main as simpool_main
from simpool.models import save_checkpoint

ROOT = Path(__file__).parents[2]
TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2)


def test_the_study_keeps_each_run_writes_a_true_board_and_a_table(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for split, count in (("train", 40), ("test", 10)):
        args = ["bench", "export", "--format", "wsol", "--split", split, "--num-images", str(count)]
        assert simpool_main([*args, "--img-size", "32", "--out", "bench", "--no-progress"]) == 0
    for name, seed in (("a", 0), ("b", 1)):
        model = simpool.create_model("vit_tiny_patch16_224", pool="default", num_classes=0, **TINY)
        save_checkpoint(model, tmp_path / f"{name}.safetensors", {"seed": str(seed)})
    probe = ["--model", "vit_tiny_patch16_224", "--model-kwargs", *(f"{k}={v}" for k, v in TINY.items())]
    probe += ["--img-size", "32", "--data", "bench/dataset", "--test-split", "test", "--heads", "linear", "simpool"]
    probe += ["--epochs", "1", "--batch-size", "16", "--workers", "0", "--no-progress", "probe.figure_images=0"]
    study = runpy.run_path(str(ROOT / "docs" / "examples" / "probe_study.py"))["main"]
    out = tmp_path / "kept"
    args = ["--backbone", "a=a.safetensors", "--backbone", "b=b.safetensors", "--seeds", "0", "1"]
    assert study([*args, "--runs", "runs", "--out", str(out), "--", *probe]) == 0

    record = json.loads((out / "study.json").read_text())
    assert [(run["name"], run["seed"]) for run in record["runs"]] == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert all("--checkpoint" in run["command"] and run["wall_s"] > 0 for run in record["runs"])
    from record import machine  # each run records where and when it ran: a study may span machines and days

    assert all(run["machine"] == machine() and len(run["date"]) == 10 for run in record["runs"])
    assert (
        study(["--backbone", "a=a.safetensors", "--seeds", "2", "--runs", "runs", "--out", str(out), "--", *probe]) == 0
    )
    record = json.loads((out / "study.json").read_text())  # a seed added later: the earlier runs stay, in order
    assert [(run["name"], run["seed"]) for run in record["runs"]] == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)]
    kept = sorted(str(path.parent) for path in out.glob("*_s*/results.json"))
    assert len(kept) == 5
    named = [f"{Path(run).name.split('_s')[0]}={run}" for run in kept]  # the board names each backbone
    assert simpool_main(["board", *named, "--out", str(out / "board"), "--check"]) == 0
    assert "| a | linear | 3 |" in (out / "board" / "board.md").read_text()

    spec = importlib.util.spec_from_file_location("results_tables", ROOT / "docs" / "results" / "tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    monkeypatch.setattr(tables, "HERE", tmp_path)
    text = tables.probe_bench("kept")()
    first = json.loads((out / "a_s0" / "results.json").read_text())["heads"][0]
    second = json.loads((out / "a_s1" / "results.json").read_text())["heads"][0]
    third = json.loads((out / "a_s2" / "results.json").read_text())["heads"][0]
    assert text.startswith("**a** (probe seeds 0, 1, 2 on `a.safetensors`):")
    # runs of one name on several checkpoints (one backbone seed each) name each run's checkpoint
    runs = [{"seed": s, "command": f"simpool probe --checkpoint {c}.safetensors"} for s, c in enumerate("xy")]
    assert tables._probe_runs(runs) == "probe seed 0 on `x.safetensors`, 1 on `y.safetensors`"
    mean = (first["test_top1"] + second["test_top1"] + third["test_top1"]) / 3
    assert "| `linear` |" in text and f"| {mean:.1f} ± " in text  # the mean ± std over the three seeds
