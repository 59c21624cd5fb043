"""COCO20k as LOST reads it: a list of train2014 file names plus COCO instances JSON (``datasets.py``).

``coco_20k_filenames.txt`` lines look like ``train2014/COCO_train2014_000000560992.jpg``; crowd boxes are
dropped and ``[x, y, w, h]`` becomes ``[round(x), round(y), round(x + w), round(y + h)]`` (Python's round).
The image's key is ``str(image_id)``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class COCOImage:
    """One image: key ``str(image_id)``, file path relative to the image root, ``(G, 4)`` non-crowd boxes."""

    name: str
    file_name: str
    boxes: np.ndarray


def coco_image_id(file_name: str) -> int:
    """``COCO_train2014_000000560992.jpg`` -> 560992."""
    return int(Path(file_name).stem.split("_")[-1])


def read_coco20k(filenames: str | os.PathLike, instances: str | os.PathLike) -> list[COCOImage]:
    """Images of the list, in its order, with their non-crowd boxes from the instances JSON."""
    files = [line.strip() for line in Path(filenames).read_text().splitlines() if line.strip()]
    with open(instances) as file:
        annotations = json.load(file)["annotations"]
    boxes: dict[int, list] = {}
    for annotation in annotations:
        if annotation.get("iscrowd", 0) == 1:
            continue
        x, y, w, h = annotation["bbox"]
        boxes.setdefault(annotation["image_id"], []).append([round(x), round(y), round(x + w), round(y + h)])
    out = []
    for file_name in files:
        image_id = coco_image_id(file_name)
        out.append(COCOImage(str(image_id), file_name, np.array(boxes.get(image_id, []), np.int64).reshape(-1, 4)))
    return out
