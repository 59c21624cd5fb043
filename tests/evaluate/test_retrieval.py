"""Revisited Oxford/Paris mAP and mP@k: hand-computed cases, an independent formulation, the CLI."""

import json
import math
import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from simpool.cli import main
from simpool.data.revisitop import load_gnd, revisitop_datasets
from simpool.evaluate.features import IMAGENET_MEAN, IMAGENET_STD, pre_logits
from simpool.evaluate.retrieval import Thumbnail, average_precision, rank_database, revisited_map

# query 0 ranks the database [3, 0, 5, 1, 2, 4]; query 1 ranks [4, 3, 2, 1, 0, 5]
RANKS = np.array([[3, 0, 5, 1, 2, 4], [4, 3, 2, 1, 0, 5]]).T  # (N_db, N_query)
GND = [{"easy": [0, 1], "hard": [2], "junk": [5]}, {"easy": [4], "hard": [], "junk": []}]


def test_hand_computed_medium_and_hard():
    result = revisited_map(RANKS, GND)
    # Medium, query 0: positives 0, 1, 2 at ranks 1, 3, 4; junk 5 at rank 2 is removed -> ranks 1, 2, 3.
    # trapezoids: (0 + 1/2)/2/3 + (1/2 + 2/3)/2/3 + (2/3 + 3/4)/2/3 = 6/72 + 14/72 + 17/72 = 37/72
    # query 1: its only positive first -> AP 1.  mAP = (37/72 + 1) / 2
    assert result["medium"]["mAP"] == pytest.approx(100 * (37 / 72 + 1) / 2)
    # mP@k, query 0: 1-based ranks 2, 3, 4 -> P@1 = 0; P@5 = 3 / min(4, 5) = 3/4 (the denominator quirk)
    # query 1: rank 1 -> P@1 = P@5 = P@10 = 1/min(1, k) = 1
    assert result["medium"]["mP@k"] == pytest.approx({1: 50.0, 5: 87.5, 10: 87.5})
    # Hard, query 0: positive 2 at rank 4, after 3 (not junk) and 0, 5, 1 (junk: junk + easy)
    # -> adjusted rank 1: AP = (0 + 1/2) / 2 = 1/4
    # query 1 has no hard positives: left out of the mean
    assert result["hard"]["mAP"] == pytest.approx(25.0)
    assert result["hard"]["mP@k"] == pytest.approx({1: 0.0, 5: 50.0, 10: 50.0})  # rank 2: 1/min(2, k)


def test_no_positive_anywhere_gives_nan_and_missing_positive_lowers_ap():
    result = revisited_map(RANKS[:, 1:], GND[1:])
    assert math.isnan(result["hard"]["mAP"]) and math.isnan(result["hard"]["mP@k"][1])
    # positives 0 and 1; only 0 is in a truncated ranking, first -> AP = 1/2 (the second never recalled)
    assert revisited_map(np.array([[0], [2]]), [{"easy": [0, 1], "hard": [], "junk": []}])["medium"]["mAP"] == 50.0


def reference_ap(ranking, ok, junk):
    """AP written independently: drop junk from the list, then the trapezoid rule over recall steps."""
    kept = [i for i in ranking if i not in set(junk)]
    hits, ap, previous_precision = 0, 0.0, 1.0
    for r, i in enumerate(kept):
        if i in set(ok):
            hits += 1
            precision = hits / (r + 1)
            ap += (previous_precision + precision) / 2 / len(ok)
        previous_precision = hits / (r + 1)
    return ap


def test_parity_with_independent_formulation():
    rng = np.random.default_rng(0)
    n_db, n_q = 40, 9
    ranks = np.stack([rng.permutation(n_db) for _ in range(n_q)], 1)
    gnd = []
    for _ in range(n_q):
        parts = np.split(rng.permutation(n_db)[: rng.integers(1, 15)], sorted(rng.integers(0, 14, 2)))
        gnd.append({"easy": parts[0].tolist(), "hard": parts[1].tolist(), "junk": parts[2].tolist()})
    result = revisited_map(ranks, gnd, kappas=(1, 5))
    medium = [
        reference_ap(ranks[:, q], g["easy"] + g["hard"], g["junk"]) for q, g in enumerate(gnd) if g["easy"] + g["hard"]
    ]
    hard = [reference_ap(ranks[:, q], g["hard"], g["junk"] + g["easy"]) for q, g in enumerate(gnd) if g["hard"]]
    assert result["medium"]["mAP"] == pytest.approx(100 * np.mean(medium))
    assert result["hard"]["mAP"] == pytest.approx(100 * np.mean(hard))


def test_average_precision_perfect_and_bad_inputs():
    assert average_precision(np.array([0, 1, 2]), 3) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one column per gnd"):
        revisited_map(RANKS, GND[:1])
    with pytest.raises(ValueError, match="unknown protocols"):
        revisited_map(RANKS, GND, protocols=("medum",))


def test_rank_database_orders_by_cosine():
    database = torch.tensor([[1.0, 0.0], [0.0, 5.0], [1.0, 1.0]])
    query = torch.tensor([[0.0, 1.0], [2.0, 0.1]])
    assert rank_database(database, query).T.tolist() == [[1, 2, 0], [0, 2, 1]]


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_load_gnd_is_safe(tmp_path):
    good = {"imlist": ["a"], "qimlist": ["q"], "gnd": [{"bbx": np.array([0.0, 0, 4, 4]), "easy": np.arange(1)}]}
    (tmp_path / "good.pkl").write_bytes(pickle.dumps(good))
    assert load_gnd(tmp_path / "good.pkl")["gnd"][0]["easy"].tolist() == [0]
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"imlist": Evil()}))
    with pytest.raises(ValueError, match="refusing"):
        load_gnd(tmp_path / "evil.pkl")
    (tmp_path / "other.pkl").write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(ValueError, match="not a revisitop"):
        load_gnd(tmp_path / "other.pkl")


def write_revisitop(root):
    folder = root / "roxford5k"
    (folder / "jpg").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"db{i}" for i in range(6)]
    for name in names + ["q0", "q1"]:
        size = (int(rng.integers(30, 50)), int(rng.integers(30, 50)), 3)
        Image.fromarray(rng.integers(0, 255, size, dtype=np.uint8)).save(folder / "jpg" / f"{name}.jpg")
    gnd = {
        "imlist": names,
        "qimlist": ["q0", "q1"],
        "gnd": [{"bbx": [2.0, 3.0, 30.0, 28.0], **g} for g in GND],
    }
    (folder / "gnd_roxford5k.pkl").write_bytes(pickle.dumps(gnd))


DYNAMIC = {"dynamic_img_size": True, "dynamic_img_pad": True}  # queries are cropped to boxes of any size
DYNAMIC_ARGS = ["dynamic_img_size=true", "dynamic_img_pad=true"]


def test_cli_end_to_end(tmp_path, tiny_vit, tiny_vit_args):
    write_revisitop(tmp_path)
    database, queries, gnd = revisitop_datasets(tmp_path, "roxford5k")
    assert queries[0][0].size == (28, 25)  # cropped to its box
    argv = ["eval", "retrieval", "--data", str(tmp_path), "--dataset", "roxford5k", "--img-size", "32"]
    argv += ["--model", "vit_tiny_patch16_224", "--pool", "simpool", "--model-kwargs", *tiny_vit_args, *DYNAMIC_ARGS]
    argv += ["--device", "cpu", "--no-progress"]
    for name, extra in (("r.json", []), ("m.json", ["--multiscale"])):
        torch.manual_seed(0)  # the same random weights in every run
        assert main(argv + [*extra, "--out", str(tmp_path / name)]) == 0
    torch.manual_seed(0)
    model = tiny_vit(num_classes=0, **DYNAMIC).eval()
    transform = transforms.Compose(
        [Thumbnail(32), transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    database, queries, gnd = revisitop_datasets(tmp_path, "roxford5k", transform)
    # DINO's multiscale features: the mean of the features of the image resized by 1, 1/sqrt(2) and 1/2
    for name, scales in (("r.json", [1.0]), ("m.json", [1.0, 2**-0.5, 0.5])):
        with torch.no_grad():
            feats = [torch.cat([scaled_features(model, x, scales) for x, _ in split]) for split in (database, queries)]
        expected = revisited_map(rank_database(*feats), gnd["gnd"])
        result = json.loads((tmp_path / name).read_text())["results"]
        for protocol in ("medium", "hard"):
            assert result[protocol]["mAP"] == pytest.approx(expected[protocol]["mAP"]), (name, protocol)
            expected_precision = {str(k): value for k, value in expected[protocol]["mP@k"].items()}
            assert result[protocol]["mP@k"] == pytest.approx(expected_precision), (name, protocol)


def scaled_features(model, image, scales):
    """The mean over ``scales`` of the features of ``image`` ``(3, H, W)`` resized bilinearly: ``(1, D)``."""
    x = image[None]  # (1, 3, H, W)
    resized = [x if s == 1 else F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False) for s in scales]
    return sum(pre_logits(model, r) for r in resized) / len(scales)
