"""Few-shot probing: seeded subsets of k images per class, the grid trained again on each, mean +- std per head
and k, each try equal to a run on that subset alone."""

from __future__ import annotations

import numpy as np
import pytest

from simpool.train.probe.fewshot import few_shot_rows, few_shot_table
from simpool.train.probe.run import probe

from .conftest import config_of


def test_subsets_take_k_images_per_class_seeded():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 0])
    rows = np.array([0, 1, 2, 3, 4, 5, 6, 7, 9])  # row 8 is held out
    picked = few_shot_rows(labels, rows, 2, seed=0, trial=0)
    assert sorted(np.bincount(labels[picked])) == [2, 2, 2] and set(picked) <= set(rows)
    assert np.array_equal(picked, few_shot_rows(labels, rows, 2, seed=0, trial=0))
    assert any(not np.array_equal(picked, few_shot_rows(labels, rows, 2, 0, t)) for t in range(1, 5))
    assert len(few_shot_rows(labels, rows, 5, seed=0, trial=0)) == len(rows)  # a class with fewer keeps all


def test_few_shot_mean_and_std_over_tries_equal_runs_on_each_subset(probe_bench, tmp_path, monkeypatch):
    from simpool.train.probe import run
    from simpool.train.probe.data import ProbeSplits

    calls, trained = {"backbone": 0, "splits": 0, "test sets": 0}, []

    def counted(name, function):
        def call(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return call

    def build(recipe, info):  # what each recipe's training loader serves
        parts = original_build(recipe, info)
        trained.append((recipe.rows, recipe.train_loader.dataset.indices, recipe.sampler.num_samples))
        return parts

    original_build = run.ProbeRecipe.build
    monkeypatch.setattr(run, "frozen_backbone", counted("backbone", run.frozen_backbone))
    monkeypatch.setattr(ProbeSplits, "load", counted("splits", ProbeSplits.load))
    monkeypatch.setattr(run.ProbeRecipe, "test", counted("test sets", run.ProbeRecipe.test))
    monkeypatch.setattr(run.ProbeRecipe, "build", build)
    settings = {"heads": ["linear", "gap"], "lrs": [1e-2, 1e-1], "figure_images": 0, "knn_k": 3, "tries": 2}
    result = probe(config_of(probe_bench / "dataset", tmp_path / "run", probe={**settings, "shots": [1, 2]}))
    monkeypatch.undo()
    # the 4 tries reuse the full run's backbone, splits and test-set tokens: each built or read once
    assert calls == {"backbone": 1, "splits": 1, "test sets": 1}
    # each try's training loader serves exactly its subset's rows
    assert len(trained) == 5 and trained[0][0] is None
    for rows, indices, num_samples in trained[1:]:
        assert np.array_equal(indices, rows) and num_samples == len(rows)
    few = result["few_shot"]
    assert few["shots"] == [1, 2] and few["tries"] == 2 and list(few["rows"]) == ["linear", "gap", "knn"]
    for name, per_k in few["rows"].items():
        for k, cell in per_k.items():
            assert cell["mean"] == pytest.approx(np.mean(cell["top1"])) and len(cell["top1"]) == 2, (name, k)
            assert cell["std"] == pytest.approx(np.std(cell["top1"]))
    # try 1 of k = 2 is the probe trained on that subset alone: the same chosen setting and test top-1
    from simpool.train.config import load_config
    from simpool.train.launch import launch
    from simpool.train.probe.config import ProbeConfig
    from simpool.train.probe.data import ProbeSplits
    from simpool.train.probe.run import ProbeRecipe

    config = load_config(ProbeConfig, tmp_path / "run" / "config.yaml")
    splits = ProbeSplits.load(config)
    rows = few_shot_rows(np.asarray(splits.plain.targets), splits.fit_rows, 2, config.train.seed, 1)
    config.train.name, config.probe.shots = "alone", ()
    alone = launch(ProbeRecipe(config, rows=rows), config)
    for head in alone["heads"]:
        assert few["rows"][head["head"]]["2"]["top1"][1] == head["test_top1"]
        assert few["rows"][head["head"]]["2"]["labels"][1] == head["label"]
    assert few["rows"]["knn"]["2"]["top1"][1] == alone["knn"]["test_top1"]
    table = few_shot_table(few).splitlines()
    assert table[0].split() == ["few-shot", "top1", "k=1", "k=2"] and len(table) == 2 + 3
