"""Deep-metric-learning datasets in their own layouts, split by class as Proxy-Anchor (CVPR 2020) splits them.

Each reader returns ``{split: [(path, label), ...]}``; the evaluation split is ``"eval"`` for
CUB-200-2011, Cars-196 and SOP (training classes never appear in it), ``"query"`` and ``"gallery"``
for In-Shop.

| dataset | file read | train classes | eval classes |
|---|---|---|---|
| CUB-200-2011 | ``<root>/CUB_200_2011/images/<class>/*.jpg`` | 0-99 | 100-199 |
| Cars-196 | ``<root>/cars196/cars_annos.mat`` (label = class - 1) | 0-97 | 98-195 |
| SOP | ``<root>/Stanford_Online_Products/Ebay_{train,test}.txt`` | Ebay_train | Ebay_test |
| In-Shop | ``<root>/Inshop_Clothes/Eval/list_eval_partition.txt`` | train | query / gallery |
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.io
from torchvision.datasets.folder import IMG_EXTENSIONS

Samples = list[tuple[str, int]]


def _by_class(samples: Samples, first_eval_class: int) -> dict[str, Samples]:
    return {
        "train": [(p, y) for p, y in samples if y < first_eval_class],
        "eval": [(p, y) for p, y in samples if y >= first_eval_class],
    }


def read_cub(root: str | os.PathLike) -> dict[str, Samples]:
    """CUB-200-2011: sorted class folders give labels 0-199; classes 0-99 train, 100-199 eval; ``._*`` skipped."""
    images = Path(root) / "CUB_200_2011" / "images"
    if not images.is_dir():
        raise FileNotFoundError(f"no CUB-200-2011 images at {images}")
    samples = []
    for label, folder in enumerate(sorted(p for p in images.iterdir() if p.is_dir())):
        for path in sorted(folder.iterdir()):
            if not path.name.startswith("._") and path.suffix.lower() in IMG_EXTENSIONS:
                samples.append((str(path), label))
    return _by_class(samples, 100)


def read_cars(root: str | os.PathLike) -> dict[str, Samples]:
    """Cars-196 from ``cars_annos.mat``: label = ``class - 1``; 0-97 train, 98-195 eval (official split ignored)."""
    folder = Path(root) / "cars196"
    annotations = scipy.io.loadmat(str(folder / "cars_annos.mat"))["annotations"][0]
    samples = [
        (str(folder / str(a["relative_im_path"][0])), int(a["class"][0][0]) - 1) for a in annotations
    ]  # one record per image
    return _by_class(samples, 98)


def _read_table(path: Path, skip: int) -> list[list[str]]:
    if not path.is_file():
        raise FileNotFoundError(f"no split file at {path}")
    return [line.split() for line in path.read_text().splitlines()[skip:] if line.strip()]


def read_sop(root: str | os.PathLike) -> dict[str, Samples]:
    """Stanford Online Products: ``Ebay_train.txt`` / ``Ebay_test.txt``, columns ``image_id class_id super_class_id
    path`` after a header line; label = ``class_id - 1``."""
    folder = Path(root) / "Stanford_Online_Products"
    return {
        split: [(str(folder / row[3]), int(row[1]) - 1) for row in _read_table(folder / f"Ebay_{name}.txt", 1)]
        for split, name in (("train", "train"), ("eval", "test"))
    }


def read_inshop(root: str | os.PathLike) -> dict[str, Samples]:
    """In-Shop Clothes: ``list_eval_partition.txt`` (a count line, a header, then ``image_name item_id status``).

    Labels are ``int(item_id.split("_")[-1])`` renumbered 0.. in sorted order: the training set on its
    own, query and gallery together (so a query's label matches its gallery items').
    """
    folder = Path(root) / "Inshop_Clothes"
    rows = _read_table(folder / "Eval" / "list_eval_partition.txt", 2)
    ids = {row[0]: int(row[1].split("_")[-1]) for row in rows}
    splits: dict[str, Samples] = {}
    for group in (("train",), ("query", "gallery")):
        members = [row for row in rows if row[2] in group]
        numbering = {item: i for i, item in enumerate(np.unique([ids[row[0]] for row in members]).tolist())}
        for name, _, status in members:
            splits.setdefault(status, []).append((str(folder / "Img" / name), numbering[ids[name]]))
    return splits


READERS = {"cub": read_cub, "cars": read_cars, "sop": read_sop, "inshop": read_inshop}


def read_recall_dataset(name: str, root: str | os.PathLike) -> dict[str, Samples]:
    """``{split: [(path, label)]}`` of a dataset of :data:`READERS`.

    Raises:
        ValueError: an unknown name, listing the valid ones.
    """
    if name not in READERS:
        raise ValueError(f"unknown dataset {name!r}; valid: {sorted(READERS)}")
    return READERS[name](root)
