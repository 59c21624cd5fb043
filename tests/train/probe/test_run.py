"""``simpool probe``'s protocol end to end (:class:`ProbeRecipe` through ``launch``): selection, scores, figures,
the test labels never read for the choice, and an exact resume."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from simpool.evaluate.attention_quality import RANKED
from simpool.evaluate.pixel_ap import pxap
from simpool.train.probe.run import probe

from .conftest import (
    HEADS,
    baselines_by_hand,
    config_of,
    maps_by_hand,
    rendered_masks,
    reported_scores,
    scores_by_hand,
)

TINY_DIM, CLASSES = 32, 10  # the tiny ViT's width; the bench's Fashion-MNIST classes


def test_end_to_end_selection_scores_and_figures(probe_bench, tmp_path):
    result = probe(config_of(probe_bench / "dataset", tmp_path / "run"))
    run = Path(result["run_dir"])
    assert {"results.json", "probe.png", "attention.png", "last.pt", "config.yaml"} <= {p.name for p in run.iterdir()}
    assert len(result["entries"]) == 6 and [h["head"] for h in result["heads"]] == HEADS
    assert [(e["head"], e["lr"]) for e in result["entries"]] == [(h, lr) for h in HEADS for lr in (1e-3, 1e-1)]
    held = max(result["heads"], key=lambda h: h["holdout_top1"])
    assert result["selected"]["head"] == held["head"] and result["selected"]["lr"] == held["lr"]
    assert result["num_holdout"] == 4 and result["num_test"] == 12  # 10% of 40 held out; every test image
    # parameters: linear and gap are BatchNorm (no affine) + Linear; simpool adds its LayerNorm, W_Q and W_K
    linear = TINY_DIM * CLASSES + CLASSES
    params = {"linear": linear, "gap": linear, "simpool": 2 * TINY_DIM + 2 * TINY_DIM * TINY_DIM + linear}
    assert {h["head"]: h["params"] for h in result["heads"]} == params
    # each head's scores (PxAP among them) are those of its trained weights at its selected lr on the 12 test images
    by_hand = scores_by_hand(run)
    for name, scores in reported_scores(result).items():
        # GAP's map is uniform and ranks nothing: its ranking scores, and only its, are None
        unscored = {key for key, value in scores.items() if value is None}
        assert unscored == (set(RANKED) & set(scores) if name == "gap" else set()), name
        scored = {key: value for key, value in scores.items() if value is not None}
        assert scored == pytest.approx({key: by_hand[name][key] for key in scored}, rel=1e-6), name
    gap = reported_scores(result)["gap"]
    assert gap["mask_mass"] == pytest.approx(gap["uniform_mask_mass"], abs=1e-6)  # the uniform map's mass
    # the saved maps are those maps, and the baselines are scored from them, the test masks and the training masks
    ids, maps = maps_by_hand(run)
    saved = np.load(run / "attention_maps.npz")
    assert [str(i) for i in saved["image_ids"]] == ids and sorted(saved.files) == sorted([*HEADS, "image_ids"])
    for name in HEADS:
        np.testing.assert_allclose(saved[name], maps[name], rtol=1e-5, atol=1e-7)
    assert result["attention_maps"] == str(run / "attention_maps.npz")
    masks = rendered_masks(probe_bench / "dataset", ids)
    ranked = [name for name in HEADS if name != "gap"]
    assert {h["head"]: h["PxAP"] for h in result["heads"] if h["head"] in ranked} == {
        name: pxap(saved[name], masks) for name in ranked
    }
    assert list(result["baselines"]) == ["uniform", "centre", "box_prior", *(f"mean_map/{h}" for h in HEADS)]
    assert result["baselines"] == baselines_by_hand(run)  # exactly: the same maps, masks and prior
    prior = {"split": "train", "metadata": str(probe_bench / "metadata" / "train"), "from": "masks"}
    assert result["box_prior"] == prior
    assert result["baselines"]["mean_map/gap"]["MaxBoxAccV2"] is None  # a uniform mean map ranks nothing


def test_selection_never_reads_the_test_labels(probe_bench, tmp_path):
    shuffled = tmp_path / "shuffled"
    shutil.copytree(probe_bench / "dataset", shuffled / "dataset")
    images = sorted((shuffled / "dataset" / "test").rglob("*.png"))
    classes = sorted(p.name for p in (shuffled / "dataset" / "train").iterdir())
    rng = np.random.default_rng(0)
    for image in images:  # every test image moved to a random class folder: its label shuffled
        target = shuffled / "dataset" / "test" / classes[rng.integers(len(classes))] / f"moved_{image.name}"
        target.parent.mkdir(exist_ok=True)
        image.rename(target)
    for folder in (shuffled / "dataset" / "test").iterdir():
        if not any(folder.iterdir()):
            folder.rmdir()
    common = dict(probe={"heads": ["linear", "gap"], "figure_images": 0})
    plain = probe(config_of(probe_bench / "dataset", tmp_path / "plain", **common))
    moved = probe(config_of(shuffled / "dataset", tmp_path / "moved", **common))
    assert [e["holdout_top1"] for e in plain["entries"]] == [e["holdout_top1"] for e in moved["entries"]]
    assert (plain["selected"]["head"], plain["selected"]["lr"]) == (moved["selected"]["head"], moved["selected"]["lr"])


def test_resume_gives_the_uninterrupted_result(probe_bench, tmp_path):
    common = dict(probe={"heads": ["linear", "simpool"], "figure_images": 0, "cache": True})
    straight = probe(config_of(probe_bench / "dataset", tmp_path / "straight", **common))
    stopped = probe(config_of(probe_bench / "dataset", tmp_path / "stopped", train={"max_updates": 2}, **common))
    assert stopped["finished"] is False and straight["finished"] is True
    resumed = probe(config_of(probe_bench / "dataset", tmp_path / "stopped", **common))
    assert resumed["finished"] is True
    for key in ("entries", "selected"):
        assert resumed[key] == straight[key]
    heads = [torch.load(Path(r["run_dir"]) / "last.pt", weights_only=True)["heads"] for r in (straight, resumed)]
    assert all(torch.equal(heads[0][k], heads[1][k]) for k in heads[0])


@pytest.mark.slow
def test_rank_0_failing_to_write_makes_every_rank_raise(torchrun, tmp_path):
    """Rank 0's files written through run_together: the other rank raises its error too, none waits at a barrier."""
    done = torchrun(Path(__file__).with_name("write_fails.py"), tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [(tmp_path / f"rank{rank}.txt").read_text() for rank in (0, 1)]
    assert lines == [
        "rank 0 raised OSError: disk full",
        "rank 1 raised RuntimeError: rank 0 failed: OSError: disk full",
    ]
