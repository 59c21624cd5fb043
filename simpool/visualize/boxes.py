"""Boxes from attention maps, drawn next to the ground truth (paper Figure C4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from .overlay import normalize_map, to_rgb, upsample_map

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1), inclusive pixel coordinates

GROUND_TRUTH_COLOR = (0.0, 0.8, 0.0)  # green, as in Figure C4
BOX_COLORS = ((0.9, 0.1, 0.1), (0.1, 0.3, 1.0), (1.0, 0.6, 0.0), (0.7, 0.0, 0.9), (0.0, 0.7, 0.8))


def attention_box(attention, image_size: tuple[int, int], threshold: float = 0.5) -> Box:
    """The box of the largest connected region where the attention reaches ``threshold``.

    As in CAM-based localization (wsolevaluation, Choe et al. CVPR 2020, which Table 5 follows):
    the map is bilinearly upsampled to the image, min-max normalised to [0, 1], thresholded at
    ``threshold``, and the bounding box of the largest 8-connected component is returned.
    ``simpool eval localization`` instead picks the threshold that maximises accuracy over a split.

    Args:
        attention: ``(h, w)`` map.
        image_size: ``(W, H)`` of the image the box refers to.
        threshold: in [0, 1], on the normalised map.

    Returns:
        ``(x0, y0, x1, y1)`` in pixels, inclusive; the whole image for a constant map.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    W, H = image_size
    heat = normalize_map(upsample_map(attention, (H, W)))  # (H, W)
    if not heat.any():  # a constant map: nothing stands out
        return (0, 0, W - 1, H - 1)
    labels, count = ndimage.label(heat >= threshold, structure=np.ones((3, 3)))  # (H, W)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]  # pixels per component: (count,)
    ys, xs = np.nonzero(labels == 1 + int(np.argmax(sizes)))
    return (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union with wsolevaluation's inclusive-pixel convention (+1 on each side)."""
    from ..evaluate.localization import box_iou_inclusive

    return float(box_iou_inclusive(np.array([a]), np.array([b]))[0, 0])


def scale_box(box: Box, from_size: tuple[int, int], to_size: tuple[int, int]) -> Box:
    """A box in pixels of an image of ``from_size = (W, H)`` moved to ``to_size``."""
    sx, sy = to_size[0] / from_size[0], to_size[1] / from_size[1]
    return (int(box[0] * sx), int(box[1] * sy), int(box[2] * sx), int(box[3] * sy))


def draw_boxes(image, boxes: list[Box], colors: list[tuple[float, float, float]], width: int = 2) -> np.ndarray:
    """Rectangles of ``colors`` over ``image``; returns ``(H, W, 3)`` floats in [0, 1]."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray((to_rgb(image) * 255).round().astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for box, color in zip(boxes, colors, strict=True):
        draw.rectangle(box, outline=tuple(int(255 * c) for c in color), width=width)
    return np.asarray(canvas, dtype=np.float64) / 255.0


def read_boxes(path: str | Path) -> dict[str, list[Box]]:
    """Ground-truth boxes by image, from JSON or wsolevaluation's ``localization.txt``.

    JSON: ``{"image name or path": [[x0, y0, x1, y1], ...]}``. Text: lines ``path,x0,y0,x1,y1``, one
    per box. Coordinates are pixels of the original image. Keys are matched to images by relative
    path, then by file name (see :func:`boxes_for`).
    """
    path = Path(path)
    text = path.read_text()
    if path.suffix == ".json":
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected an object mapping image names to lists of boxes")
        return {name: [_box(b, path) for b in boxes] for name, boxes in raw.items()}
    boxes: dict[str, list[Box]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.strip().split(",")
        if len(fields) != 5:
            raise ValueError(f"{path}:{number}: expected 'path,x0,y0,x1,y1', got {line!r}")
        boxes.setdefault(fields[0], []).append(_box(fields[1:], path))
    return boxes


def boxes_for(image_path: Path, boxes: dict[str, list[Box]]) -> list[Box]:
    """The boxes of one image: its path as given, a key ending with its path, or its file name."""
    text = image_path.as_posix()
    for key, value in boxes.items():
        if text == key or text.endswith("/" + key.lstrip("./")) or Path(key).name == image_path.name:
            return value
    return []


def _box(values, path: Path) -> Box:
    box = tuple(int(round(float(v))) for v in values)
    if len(box) != 4 or box[2] < box[0] or box[3] < box[1]:
        raise ValueError(f"{path}: a box must be [x0, y0, x1, y1] with x0 <= x1 and y0 <= y1, got {list(values)}")
    return box
