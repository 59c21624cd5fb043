"""Grids over everything: heads x options x lrs x weight decays in one pass, each entry as it trains alone, the
selection per head on the held-out part only, several test sets with the BG-gap and the k-NN row."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from simpool.data.bench_export import export
from simpool.evaluate.knn import knn_classify_many
from simpool.train.probe.config import check_config
from simpool.train.probe.grid import build_grid, grid_entries
from simpool.train.probe.run import probe

from .conftest import config_of, tiny_backbone

GRID = {
    "heads": ["linear", "ep"],
    "lrs": [1e-3, 1e-1],
    "weight_decays": [0.0, 0.5],
    "head_kwargs": {"ep": {"num_queries": [2, 4]}},
    "figure_images": 0,
    "knn_k": 0,
}


def test_entries_are_every_head_option_lr_and_weight_decay():
    entries = grid_entries(["linear", "ep"], [1e-3, 1e-2], [0.0, 0.1], {"ep": {"num_queries": [2, 4], "d_out": 1}})
    assert len(entries) == 2 * 2 + 2 * 2 * 2
    assert [e.label for e in entries[4:]] == ["ep[num_queries=2]"] * 4 + ["ep[num_queries=4]"] * 4
    assert entries[5].setting() == {"head": "ep", "lr": 1e-3, "weight_decay": 0.1, "options": {"num_queries": 2}}


def test_every_head_starts_as_it_would_alone(tiny_vit):
    grid = build_grid(tiny_backbone(tiny_vit), ["linear", "ep"], [1e-3, 1e-2], 3, 32, seed=5)
    alone = build_grid(tiny_backbone(tiny_vit), ["ep"], [1e-2], 3, 32, seed=5)
    for a, b in zip(grid.heads[3].parameters(), alone.heads[0].parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("probe_settings", "message"),
    [
        ({"lrs": [1e-3, 1e-3]}, "learning rates \\(probe.lrs, --lr\\) \\[0.001, 0.001\\] name 0.001 twice"),
        (
            {"weight_decays": [0.1, 0.1]},
            "weight decays \\(probe.weight_decays, --weight-decay\\) \\[0.1, 0.1\\] name 0.1 twice",
        ),
        ({"weight_decays": [-0.1]}, "weight decays \\(probe.weight_decays, --weight-decay\\) must be non-negative"),
        ({"head_kwargs": {"simpool": {"gamma": [2.0, 2.0]}}}, "head option simpool.gamma=\\[2.0, 2.0\\]: give each"),
        ({"head_kwargs": {"ep": {"num_queries": 2}}}, "head options for 'ep', which is not among the heads"),
        ({"test_splits": ["test"]}, "test splits \\(--test-split\\) \\['test', 'test'\\] name 'test' twice"),
    ],
)
def test_a_value_given_twice_is_one_line(probe_settings, message, probe_bench, tmp_path):
    with pytest.raises(ValueError, match=message):
        check_config(config_of(probe_bench / "dataset", tmp_path / "run", probe=probe_settings))


def _alone(entry: dict) -> dict:
    options = {"ep": dict(entry["options"])} if entry["options"] else {}
    return {
        **GRID,
        "heads": [entry["head"]],
        "lrs": [entry["lr"]],
        "weight_decays": [entry["weight_decay"]],
        "head_kwargs": options,
    }


def test_each_combination_equals_its_run_alone(probe_bench, tmp_path):
    data = probe_bench / "dataset"
    grid = probe(config_of(data, tmp_path / "grid", probe=GRID))
    assert len(grid["entries"]) == 2 * 2 + 2 * 2 * 2  # (linear + ep x 2 options) x 2 lrs x 2 wds
    trained = torch.load(Path(grid["run_dir"]) / "last.pt", weights_only=True)["heads"]
    for index in (3, 9):  # linear at lr 0.1 wd 0.5; ep[num_queries=4] at lr 1e-3 wd 0.5
        entry = grid["entries"][index]
        alone = probe(config_of(data, tmp_path / f"alone{index}", probe=_alone(entry)))
        keys = ("holdout_top1", "test_top1", "test_top5", "params")
        assert {k: alone["entries"][0][k] for k in keys} == {k: entry[k] for k in keys}, entry["label"]
        weights = torch.load(Path(alone["run_dir"]) / "last.pt", weights_only=True)["heads"]
        for key, value in weights.items():
            torch.testing.assert_close(trained[f"{index}.{key.split('.', 1)[1]}"], value, rtol=1e-5, atol=1e-6)
    # each head's row is its entry of best held-out top-1, and it names its setting
    for head in grid["heads"]:
        rows = [e for e in grid["entries"] if e["head"] == head["head"]]
        best = max(rows, key=lambda e: e["holdout_top1"])
        assert head["holdout_top1"] == best["holdout_top1"] and head["index"] == grid["entries"].index(best)
        assert {k: head[k] for k in ("lr", "weight_decay", "options", "label")} == {
            k: best[k] for k in ("lr", "weight_decay", "options", "label")
        }
    # the selection: the entry of best held-out top-1 over the whole grid (the first of equals)
    chosen = max(grid["entries"], key=lambda e: e["holdout_top1"])
    assert {k: grid["selected"][k] for k in ("label", "lr", "weight_decay")} == {
        k: chosen[k] for k in ("label", "lr", "weight_decay")
    }


def test_the_selection_reads_no_test_split(probe_bench, tmp_path):
    """The test images replaced by noise: every held-out number and every choice stays the same."""
    noisy = tmp_path / "noisy"
    shutil.copytree(probe_bench / "dataset", noisy / "dataset")
    rng = np.random.default_rng(0)
    from PIL import Image

    for image in (noisy / "dataset" / "test").rglob("*.png"):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(image)
    settings = {**GRID, "heads": ["linear", "gap"], "head_kwargs": {}}
    plain = probe(config_of(probe_bench / "dataset", tmp_path / "plain", probe=settings))
    moved = probe(config_of(noisy / "dataset", tmp_path / "moved", probe=settings))
    assert [e["holdout_top1"] for e in plain["entries"]] == [e["holdout_top1"] for e in moved["entries"]]
    assert [e["test_top1"] for e in plain["entries"]] != [e["test_top1"] for e in moved["entries"]]
    assert plain["selected"] | {"test_top1": 0, "test_top5": 0} == moved["selected"] | {"test_top1": 0, "test_top5": 0}
    assert [h["index"] for h in plain["heads"]] == [h["index"] for h in moved["heads"]]


@pytest.fixture(scope="module")
def in9_bench(probe_bench, tmp_path_factory) -> Path:
    """The probe bench plus the eight IN-9 variants of 12 test images (``in9/<variant>/val``)."""
    root = tmp_path_factory.mktemp("in9_bench")
    shutil.copytree(probe_bench, root, dirs_exist_ok=True)
    export(root / "dataset" / "in9", "in9", "all", split="test", num_images=12, progress=False)
    return root / "dataset"


def test_several_test_sets_the_bg_gap_and_the_knn_row(in9_bench, tmp_path):
    settings = {"heads": ["linear", "gap"], "lrs": [1e-2], "figure_images": 0, "test_splits": ["in9"], "knn_k": 5}
    result = probe(config_of(in9_bench, tmp_path / "run", probe=settings))
    names = ["test", "original", "only_fg", "no_fg", "only_bg_b", "only_bg_t", "mixed_same", "mixed_rand", "mixed_next"]
    assert [t["name"] for t in result["test_sets"]] == names and {t["count"] for t in result["test_sets"]} == {12}
    for row in [*result["heads"], result["knn"]]:
        top1 = {name: row["test_sets"][name]["top1"] for name in names}
        assert row["bg_gap"] == top1["mixed_same"] - top1["mixed_rand"]
        assert top1["test"] == row["test_top1"]
    # the bench's test split and IN-9's original variant are the same images: the same top-1
    assert all(h["test_sets"]["test"] == h["test_sets"]["original"] for h in result["heads"])
    assert (Path(result["run_dir"]) / "robustness.png").is_file()
    saved = json.loads((Path(result["run_dir"]) / "results.json").read_text())
    assert saved["knn"] == result["knn"] and saved["heads"][0]["bg_gap"] == result["heads"][0]["bg_gap"]
    # the k-NN row is DINO's k-NN on the linear head's features (the CLS token) of the plain images
    knn = result["knn"]
    features, labels = _cls_features(in9_bench, tmp_path / "run")
    fit, test = features["fit"], features["mixed_rand"]
    by_hand = knn_classify_many(fit[0], fit[1], test[0], test[1], (5,), 0.07, 10)[5]
    assert knn["test_sets"]["mixed_rand"]["top1"] == pytest.approx(by_hand["top1"])
    assert knn["k"] == 5 and labels == 10


@torch.no_grad()
def _cls_features(root: Path, run_dir: Path) -> tuple[dict, int]:
    """The CLS token of the run's backbone on the training part's and mixed_rand's plain images."""
    from simpool.data.transforms import build_transforms
    from simpool.train.config import load_config
    from simpool.train.probe.config import ProbeConfig
    from simpool.train.probe.data import ProbeSplits, Rows
    from simpool.train.probe.run import frozen_backbone

    config = load_config(ProbeConfig, run_dir / "config.yaml")
    torch.manual_seed(config.train.seed)  # the run's backbone: the same seed, the same weights
    backbone = frozen_backbone(config, torch.device("cpu"))
    splits = ProbeSplits.load(config)
    _, eval_tf = build_transforms(config.data)
    fit = [Rows(splits.plain, splits.fit_rows)[i] for i in range(len(splits.fit_rows))]
    images, labels = torch.stack([x for x, _ in fit]), torch.tensor([y for _, y in fit])
    test = splits.tests["mixed_rand"]
    test_images = torch.stack([test[i][0] for i in range(len(test))])
    test_labels = torch.tensor([test[i][1] for i in range(len(test))])
    features = {
        "fit": (backbone(images)[:, 0], labels),
        "mixed_rand": (backbone(test_images)[:, 0], test_labels),
    }
    return features, len(splits.classes)


def test_a_probe_whose_test_images_are_unreadable_fails(probe_bench, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(probe_bench / "dataset", broken / "dataset")
    for image in (broken / "dataset" / "test").rglob("*.png"):
        image.write_bytes(b"not a png")
    settings = {"heads": ["linear"], "lrs": [1e-2], "figure_images": 0, "knn_k": 0}
    message = "12 of 12 images of the test set test were unreadable"
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=message):
        probe(config_of(broken / "dataset", tmp_path / "run", probe=settings, train={"max_updates": 1}))
    assert not (tmp_path / "run" / "results.json").exists()


def test_each_selected_head_is_saved_and_loads_with_its_config(probe_bench, tmp_path):
    from simpool.train.probe.saved import load_head

    settings = {**GRID, "heads": ["linear", "ep"], "head_kwargs": {"ep": {"num_queries": [2, 4]}}, "lrs": [1e-2]}
    settings["weight_decays"] = [0.0]
    result = probe(config_of(probe_bench / "dataset", tmp_path / "run", probe=settings))
    trained = torch.load(Path(result["run_dir"]) / "last.pt", weights_only=True)["heads"]
    for row in result["heads"]:
        path = Path(result["head_files"][row["head"]])
        assert path == Path(result["run_dir"]) / "heads" / f"{row['label']}.safetensors"
        head, config = load_head(path)
        assert config["setting"] == {k: row[k] for k in ("head", "lr", "weight_decay", "options")}
        assert config["classes"][0] == "00_t-shirt_top" and config["backbone"]["name"] == "vit_tiny_patch16_224"
        state = {k.split(".", 1)[1]: v for k, v in trained.items() if k.split(".")[0] == str(row["index"])}
        for key, value in head.state_dict().items():
            assert torch.equal(value, state[key]), key
    with pytest.raises(ValueError, match="is not a probe head"):
        from safetensors.torch import save_file

        save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
        load_head(tmp_path / "other.safetensors")
