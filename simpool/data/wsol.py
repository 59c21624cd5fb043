"""wsolevaluation metadata: ``image_ids.txt``, ``class_labels.txt``, ``image_sizes.txt``, ``localization.txt``.

The layout of clovaai/wsolevaluation (``metadata/<CUB|ILSVRC>/<split>/``): CSV without a header, one record
a line; ``localization.txt`` holds ``<image_id>,x0,y0,x1,y1`` in original pixels, one line per box.
Score maps are ``<scoremap_root>/<image_id>.npy`` (the image id keeps its extension).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..utils import atomic_write_bytes

FILES = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")


@dataclass
class WSOLMetadata:
    """One split: ordered image ids, labels, ``(W, H)`` sizes and ``(G, 4)`` boxes per image."""

    image_ids: list[str]
    class_labels: dict[str, int] = field(default_factory=dict)
    image_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    boxes: dict[str, np.ndarray] = field(default_factory=dict)


def _records(path: Path) -> list[list[str]]:
    with open(path) as file:
        return [line.rstrip("\n").split(",") for line in file if line.strip("\n")]


def read_wsol_metadata(directory: str | os.PathLike) -> WSOLMetadata:
    """Read a split folder (the reference's ``configure_metadata`` + ``get_*`` readers)."""
    directory = Path(directory)
    missing = [name for name in FILES if not (directory / name).is_file()]
    if missing:
        raise ValueError(f"{directory} is not a wsolevaluation metadata folder: missing {', '.join(missing)}")
    image_ids = [record[0] for record in _records(directory / "image_ids.txt")]
    labels = {image_id: int(label) for image_id, label in _records(directory / "class_labels.txt")}
    sizes = {image_id: (int(w), int(h)) for image_id, w, h in _records(directory / "image_sizes.txt")}
    boxes: dict[str, list] = {}
    for record in _records(directory / "localization.txt"):
        if len(record) != 5:
            raise ValueError(f"{directory / 'localization.txt'}: expected '<id>,x0,y0,x1,y1', got {record}")
        boxes.setdefault(record[0], []).append([int(v) for v in record[1:]])
    for image_id, image_boxes in boxes.items():
        _check_boxes(image_id, image_boxes, sizes.get(image_id), directory / "localization.txt")
    return WSOLMetadata(image_ids, labels, sizes, {k: np.array(v, dtype=np.int64) for k, v in boxes.items()})


def _check_boxes(image_id: str, boxes: list[list[int]], size: tuple[int, int] | None, source: Path) -> None:
    """Each box ``x0, y0, x1, y1`` must lie in its ``(W, H)`` image, ``0 <= x0 <= x1 <= W`` (same for y).

    The metric would score a box outside the image or inverted as a miss, silently; it is an error here.
    """
    if size is None:
        raise ValueError(f"{source}: image {image_id!r} has boxes but no size in image_sizes.txt")
    width, height = size
    for x0, y0, x1, y1 in boxes:
        if not (0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height):
            raise ValueError(
                f"{source}: box ({x0}, {y0}, {x1}, {y1}) of image {image_id!r} is not inside its {width}x{height} "
                "image: expected 0 <= x0 <= x1 <= W and 0 <= y0 <= y1 <= H"
            )


def write_wsol_metadata(directory: str | os.PathLike, metadata: WSOLMetadata) -> Path:
    """Write the four files atomically, in ``metadata.image_ids`` order."""
    directory = Path(directory)
    ids = metadata.image_ids
    atomic_write_bytes(directory / "image_ids.txt", "".join(f"{i}\n" for i in ids).encode())
    labels = "".join(f"{i},{metadata.class_labels[i]}\n" for i in ids if i in metadata.class_labels)
    atomic_write_bytes(directory / "class_labels.txt", labels.encode())
    sizes = "".join(f"{i},{metadata.image_sizes[i][0]},{metadata.image_sizes[i][1]}\n" for i in ids)
    atomic_write_bytes(directory / "image_sizes.txt", sizes.encode())
    lines = [f"{i},{x0},{y0},{x1},{y1}\n" for i in ids for x0, y0, x1, y1 in np.asarray(metadata.boxes.get(i, []))]
    atomic_write_bytes(directory / "localization.txt", "".join(lines).encode())
    return directory


def scoremap_path(root: str | os.PathLike, image_id: str) -> Path:
    """``<root>/<image_id>.npy``, as wsolevaluation's ``CamDataset`` names score maps."""
    return Path(root) / f"{image_id}.npy"


def load_scoremaps(root: str | os.PathLike, image_ids: list[str]) -> np.ndarray:
    """Score maps of the given ids ``(N, H, W)`` float64, with ``np.load(allow_pickle=False)``."""
    maps = []
    for image_id in image_ids:
        path = scoremap_path(root, image_id)
        if not path.is_file():
            raise ValueError(f"no score map for {image_id!r}: {path} is missing")
        maps.append(np.load(path, allow_pickle=False).astype(np.float64))
    return np.stack(maps)
