"""Recall@k (Proxy-Anchor protocol): hand-made cases, parity with the reference's formulation, loaders, CLI."""

import json

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from simpool.cli import main
from simpool.data.recall_datasets import read_cars, read_cub, read_inshop, read_recall_dataset, read_sop
from simpool.evaluate.recall import recall_at_k, recall_at_k_gallery


def unit(degrees):
    r = torch.tensor(degrees, dtype=torch.float64).deg2rad()
    return torch.stack([r.cos(), r.sin()], 1).float()


def test_hand_made_recall():
    # angles 0, 25, 10, 90 with classes 0, 0, 1, 1:
    # q0 (0):  10 (class 1) then 25 (class 0) -> first match at rank 1
    # q1 (25): 10 (class 1) then 0 (class 0)   -> rank 1
    # q2 (10): 0 and 25 (class 0) then 90       -> rank 2
    # q3 (90): 25 (class 0) then 10 (class 1)   -> rank 1
    result = recall_at_k(unit([0, 25, 10, 90]), torch.tensor([0, 0, 1, 1]), ks=(1, 2, 3))
    assert result == {1: 0.0, 2: 75.0, 3: 100.0}


def test_self_is_excluded_ties_favour_the_match_and_singletons_miss():
    same = torch.tensor([[1.0, 0.0]] * 3)
    # q0's two neighbours are equally similar, one of each class: the match counts
    assert recall_at_k(same, torch.tensor([0, 1, 0]), ks=(1,)) == {1: pytest.approx(200 / 3)}  # q1 has no match
    # angles 0, 5, 90 with classes 2, 0, 0: q0 is alone in its class, never a hit (though itself is most similar);
    # q1 (5) meets 0 (class 2) before 90 -> rank 1; q2 (90) meets 5 (class 0) first -> rank 0
    result = recall_at_k(unit([0, 5, 90]), torch.tensor([2, 0, 0]), ks=(1, 2))
    assert result == {1: pytest.approx(100 / 3), 2: pytest.approx(200 / 3)}


def proxy_anchor_recall(features, labels, ks):
    """Proxy-Anchor's evaluate_cos: top (1 + K) by cosine, drop the first column (self), label among the first k."""
    x = features / np.linalg.norm(features, axis=1, keepdims=True)
    neighbours = np.argsort(-(x @ x.T), axis=1, kind="stable")[:, 1 : 1 + max(ks)]
    return {k: 100.0 * np.mean([labels[q] in labels[neighbours[q, :k]] for q in range(len(x))]) for k in ks}


def test_parity_with_reference_formulation_and_chunking():
    rng = np.random.default_rng(0)
    features, labels = rng.normal(size=(200, 8)), rng.integers(0, 20, 200)
    expected = proxy_anchor_recall(features, labels, (1, 2, 4, 8, 16, 32))
    args = torch.tensor(features), torch.tensor(labels)
    assert recall_at_k(*args, ks=(1, 2, 4, 8, 16, 32)) == pytest.approx(expected)
    assert recall_at_k(*args, ks=(1, 2, 4, 8, 16, 32), memory_bytes=3000) == pytest.approx(expected)


def inshop_reference(query, query_y, gallery, gallery_y, ks):
    """evaluate_cos_Inshop: threshold = best same-id similarity; hit iff fewer than k others score strictly above."""
    q = query / np.linalg.norm(query, axis=1, keepdims=True)
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    sim = q @ g.T
    out = {}
    for k in ks:
        hits = [
            (sim[i][gallery_y != query_y[i]] > sim[i][gallery_y == query_y[i]].max()).sum() < k for i in range(len(q))
        ]
        out[k] = 100.0 * np.mean(hits)
    return out


def test_gallery_recall_hand_made_and_parity():
    # query at 0 degrees (class 0); gallery: class 1 at 5, class 1 at 10, class 0 at 20 -> rank 2
    gallery, gallery_y = unit([5, 10, 20]), torch.tensor([1, 1, 0])
    assert recall_at_k_gallery(unit([0]), torch.tensor([0]), gallery, gallery_y, ks=(2, 3)) == {2: 0.0, 3: 100.0}
    rng = np.random.default_rng(1)
    query, query_y = rng.normal(size=(50, 6)), rng.integers(0, 10, 50)
    gallery, gallery_y = rng.normal(size=(80, 6)), np.concatenate([np.arange(10), rng.integers(0, 10, 70)])
    expected = inshop_reference(query, query_y, gallery, gallery_y, (1, 10, 20))
    tensors = [torch.tensor(a) for a in (query, query_y, gallery, gallery_y)]
    assert recall_at_k_gallery(*tensors, ks=(1, 10, 20), memory_bytes=1000) == pytest.approx(expected)
    with pytest.raises(ValueError, match="no gallery item"):
        recall_at_k_gallery(unit([0]), torch.tensor([7]), unit([0]), torch.tensor([0]))


def save_image(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (36, 40, 3), dtype=np.uint8)).save(path)


def test_readers_follow_the_split_files(tmp_path):
    for c in range(101):  # CUB: class folders sorted; 100 and beyond are eval; ._ files skipped
        save_image(tmp_path / "CUB_200_2011/images" / f"{c:03d}.bird/a.jpg", c)
    (tmp_path / "CUB_200_2011/images/100.bird/._a.jpg").write_bytes(b"")
    cub = read_cub(tmp_path)
    assert len(cub["train"]) == 100 and [y for _, y in cub["eval"]] == [100]
    sop = tmp_path / "Stanford_Online_Products"
    sop.mkdir()
    (sop / "Ebay_train.txt").write_text("image_id class_id super_class_id path\n1 1 1 a/x.jpg\n")
    (sop / "Ebay_test.txt").write_text("image_id class_id super_class_id path\n1 11319 1 b/y.jpg\n2 11320 1 b/z.jpg\n")
    assert [(p.endswith("b/y.jpg"), y) for p, y in read_sop(tmp_path)["eval"]] == [(True, 11318), (False, 11319)]
    inshop = tmp_path / "Inshop_Clothes/Eval"
    inshop.mkdir(parents=True)
    rows = [
        "a.jpg id_00000007 train",
        "b.jpg id_00000002 query",
        "c.jpg id_00000009 gallery",
        "d.jpg id_00000002 gallery",
    ]
    (inshop / "list_eval_partition.txt").write_text("4\nimage_name item_id evaluation_status\n" + "\n".join(rows))
    splits = read_inshop(tmp_path)
    assert [y for _, y in splits["train"]] == [0]  # train renumbered on its own
    assert [y for _, y in splits["query"]] == [0] and [y for _, y in splits["gallery"]] == [1, 0]  # ids 2 -> 0, 9 -> 1
    cars = tmp_path / "cars196"
    cars.mkdir()
    records = np.array(
        [("car_ims/000001.jpg", 1), ("car_ims/000002.jpg", 99)], dtype=[("relative_im_path", "O"), ("class", "O")]
    )
    scipy.io.savemat(cars / "cars_annos.mat", {"annotations": records[None]})
    cars_splits = read_cars(tmp_path)
    assert [y for _, y in cars_splits["train"]] == [0] and [y for _, y in cars_splits["eval"]] == [98]
    with pytest.raises(ValueError, match="valid"):
        read_recall_dataset("mnist", tmp_path)


@pytest.mark.parametrize("dataset", ["sop", "inshop"])
def test_cli_end_to_end(tmp_path, dataset, tiny_vit_args):
    if dataset == "sop":
        root = tmp_path / "Stanford_Online_Products"
        lines = [f"{i} {11319 + i % 3} 1 img/{i}.jpg" for i in range(9)]
        (root / "img").mkdir(parents=True)
        (root / "Ebay_train.txt").write_text("h\n")
        (root / "Ebay_test.txt").write_text("image_id class_id super_class_id path\n" + "\n".join(lines))
        for i in range(9):
            save_image(root / f"img/{i}.jpg", i)
    else:
        root = tmp_path / "Inshop_Clothes"
        rows = [f"img/{i}.jpg id_{i % 3:08d} {'query' if i < 3 else 'gallery'}" for i in range(9)]
        (root / "Eval").mkdir(parents=True)
        (root / "Eval/list_eval_partition.txt").write_text(
            "9\nimage_name item_id evaluation_status\n" + "\n".join(rows)
        )
        for i in range(9):
            save_image(root / f"Img/img/{i}.jpg", i)
    argv = ["eval", "recall", "--dataset", dataset, "--data", str(tmp_path), "--ks", "1", "2", "8"]
    argv += ["--model", "vit_tiny_patch16_224", "--model-kwargs", *tiny_vit_args, "--resize", "32", "--img-size", "32"]
    argv += ["--workers", "0", "--device", "cpu", "--no-progress", "--out", str(tmp_path / "r.json")]
    assert main(argv) == 0
    result = json.loads((tmp_path / "r.json").read_text())["results"]
    # 8 >= every other item (sop) / every gallery item (inshop): each query finds its class
    assert result["8"] == 100.0 and result["1"] <= result["2"] <= 100.0
