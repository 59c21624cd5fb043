"""wsolevaluation metadata: ``image_ids.txt``, ``class_labels.txt``, ``image_sizes.txt``, ``localization.txt``.

The layout of clovaai/wsolevaluation (``metadata/<CUB|ILSVRC|OpenImages>/<split>/``): CSV without a header, one
record a line. ``localization.txt`` holds boxes, ``<image_id>,x0,y0,x1,y1`` in original pixels, one line per box
(CUB, ILSVRC), or masks, ``<image_id>,<mask path>,<ignore path>``, one line per instance (OpenImages: the ignore
path on an image's first line only, empty when the image has none). A split with both, as ``simpool bench export
--format wsol`` writes, keeps its boxes in ``localization.txt`` and its masks, in the OpenImages format, in
``masks.txt``. Mask paths are relative to a mask root (wsolevaluation's ``<mask_root>/OpenImages``; a bench
export's ``masks/`` folder). Score maps are ``<scoremap_root>/<image_id>.npy`` (the image id keeps its extension).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..utils import atomic_write_bytes

FILES = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")
MASKS = "masks.txt"  # a split's masks beside its boxes, in the OpenImages format of localization.txt
IGNORED = 255  # a mask's value on the pixels its ignore region leaves out of the metric (wsolevaluation's get_mask)


@dataclass
class WSOLMetadata:
    """One split: ordered image ids, labels, ``(W, H)`` sizes and ``(G, 4)`` boxes per image, and per image its
    mask paths (one per instance) and ignore-mask path (``""``: none)."""

    image_ids: list[str]
    class_labels: dict[str, int] = field(default_factory=dict)
    image_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    boxes: dict[str, np.ndarray] = field(default_factory=dict)
    masks: dict[str, list[str]] = field(default_factory=dict)
    ignore: dict[str, str] = field(default_factory=dict)


def _records(path: Path) -> list[list[str]]:
    with open(path) as file:
        return [line.rstrip("\n").split(",") for line in file if line.strip("\n")]


def _add_mask(metadata: WSOLMetadata, record: list[str], source: Path) -> None:
    """One ``<image_id>,<mask path>,<ignore path>`` line (the reference's ``get_mask_paths``)."""
    image_id, mask, ignore = record
    if image_id in metadata.masks:
        if ignore:
            raise ValueError(f"{source}: image {image_id!r} gives an ignore mask on a line other than its first")
        metadata.masks[image_id].append(mask)
    else:
        metadata.masks[image_id], metadata.ignore[image_id] = [mask], ignore


def read_wsol_metadata(directory: str | os.PathLike) -> WSOLMetadata:
    """Read a split folder (the reference's ``configure_metadata`` + ``get_*`` readers), and ``masks.txt`` if any."""
    directory = Path(directory)
    missing = [name for name in FILES if not (directory / name).is_file()]
    if missing:
        raise ValueError(f"{directory} is not a wsolevaluation metadata folder: missing {', '.join(missing)}")
    image_ids = [record[0] for record in _records(directory / "image_ids.txt")]
    labels = {image_id: int(label) for image_id, label in _records(directory / "class_labels.txt")}
    sizes = {image_id: (int(w), int(h)) for image_id, w, h in _records(directory / "image_sizes.txt")}
    metadata = WSOLMetadata(image_ids, labels, sizes)
    boxes: dict[str, list] = {}
    mask_files = [directory / "localization.txt"] + [p for p in [directory / MASKS] if p.is_file()]
    for source in mask_files:
        for record in _records(source):
            if len(record) == 3:
                _add_mask(metadata, record, source)
            elif len(record) == 5 and source.name != MASKS:
                boxes.setdefault(record[0], []).append([int(v) for v in record[1:]])
            else:
                raise ValueError(
                    f"{source}: expected '<id>,x0,y0,x1,y1' (a box) or '<id>,<mask>,<ignore>' (a mask), got {record}"
                )
    for image_id, image_boxes in boxes.items():
        _check_boxes(image_id, image_boxes, sizes.get(image_id), directory / "localization.txt")
    metadata.boxes = {k: np.array(v, dtype=np.int64) for k, v in boxes.items()}
    return metadata


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
    """Write the four files atomically, in ``metadata.image_ids`` order, and ``masks.txt`` when there are masks."""
    directory = Path(directory)
    ids = metadata.image_ids
    atomic_write_bytes(directory / "image_ids.txt", "".join(f"{i}\n" for i in ids).encode())
    labels = "".join(f"{i},{metadata.class_labels[i]}\n" for i in ids if i in metadata.class_labels)
    atomic_write_bytes(directory / "class_labels.txt", labels.encode())
    sizes = "".join(f"{i},{metadata.image_sizes[i][0]},{metadata.image_sizes[i][1]}\n" for i in ids)
    atomic_write_bytes(directory / "image_sizes.txt", sizes.encode())
    lines = [f"{i},{x0},{y0},{x1},{y1}\n" for i in ids for x0, y0, x1, y1 in np.asarray(metadata.boxes.get(i, []))]
    atomic_write_bytes(directory / "localization.txt", "".join(lines).encode())
    if metadata.masks:
        masks = [
            f"{i},{path},{metadata.ignore.get(i, '') if n == 0 else ''}\n"
            for i in ids
            for n, path in enumerate(metadata.masks.get(i, []))
        ]
        atomic_write_bytes(directory / MASKS, "".join(masks).encode())
    return directory


def default_mask_root(metadata_dir: str | os.PathLike, data_root: str | os.PathLike | None = None) -> Path | None:
    """Where a split's mask paths start: a bench export's ``masks/`` beside its ``metadata/`` folder
    (``<metadata_dir>/../../masks``), else the image root ``data_root`` (wsolevaluation keeps OpenImages' masks
    beside its images); ``None`` when neither is known."""
    beside = Path(metadata_dir).parent.parent / "masks"
    if beside.is_dir():
        return beside
    return Path(data_root) if data_root else None


def _read_gray(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """A grey-level PNG as float32 ``(H, W)``, resized (nearest) to ``size = (H, W)`` when given."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"cannot read the mask {path}")
    image = np.float32(image)
    if size is not None and image.shape != tuple(size):
        image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return image  # (H, W)


def read_mask(
    root: str | os.PathLike, paths: list[str], ignore_path: str = "", size: tuple[int, int] | None = None
) -> np.ndarray:
    """One image's mask ``(H, W)`` uint8, as wsolevaluation's ``get_mask``: 1 on the union of its instances' masks
    (each ``> 0.5`` after a nearest resize to ``size = (H, W)``; at their own size when ``None``), ``IGNORED`` (255)
    on its ignore region outside them, 0 elsewhere."""
    instances = [_read_gray(Path(root) / path, size) > 0.5 for path in paths]
    if len({m.shape for m in instances}) != 1:
        raise ValueError(f"the masks {paths} differ in size: give a size to resize them to")
    mask = np.stack(instances).any(axis=0)  # (H, W)
    ignored = np.zeros_like(mask)
    if ignore_path:
        ignored = (_read_gray(Path(root) / ignore_path, mask.shape) > 0.5) & ~mask
    return mask.astype(np.uint8) + IGNORED * ignored.astype(np.uint8)


def load_masks(
    metadata: WSOLMetadata,
    root: str | os.PathLike,
    image_ids: list[str],
    size: tuple[int, int] | None = None,
    ignore: bool = True,
) -> np.ndarray:
    """The masks ``(N, H, W)`` uint8 of ``image_ids`` (:func:`read_mask`), resized (nearest) to ``size = (H, W)``, or
    at their own size when ``None`` (then they must all have one). ``ignore=False`` counts the ignore regions as
    background (0) instead of ``IGNORED``."""
    missing = [i for i in image_ids if i not in metadata.masks]
    if missing:
        raise ValueError(f"{len(missing)} images have no mask in the metadata, e.g. {missing[0]!r}")
    masks = [read_mask(root, metadata.masks[i], metadata.ignore.get(i, "") if ignore else "", size) for i in image_ids]
    shapes = sorted({m.shape for m in masks})
    if len(shapes) > 1:
        raise ValueError(f"the masks differ in size ({shapes[0]}, {shapes[-1]}, ...): give a size to resize them to")
    return np.stack(masks) if masks else np.zeros((0, *(size or (0, 0))), np.uint8)


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
