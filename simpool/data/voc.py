"""PASCAL VOC detection annotations (VOC07 / VOC12 trainval) as LOST reads them (``datasets.py : extract_gt_VOC``).

Layout (torchvision's ``VOCDetection``): ``<root>/VOCdevkit/VOC<year>/{JPEGImages,Annotations,ImageSets/Main}``.
Boxes become ``[xmin - 1, ymin - 1, xmax, ymax]``: 1-based inclusive pixels to 0-based, end exclusive.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class VOCAnnotation:
    """One image: its file name (LOST's key, e.g. ``'000005.jpg'``), ``(W, H)``, ``(G, 4)`` boxes, classes."""

    name: str
    size: tuple[int, int]
    boxes: np.ndarray
    classes: list[str]


def voc_dir(root: str | os.PathLike, year: str) -> Path:
    """``<root>/VOCdevkit/VOC<year>``, or ``root`` itself when it is already that folder."""
    root = Path(root)
    for candidate in (root / "VOCdevkit" / f"VOC{year}", root):
        if (candidate / "Annotations").is_dir():
            return candidate
    raise ValueError(f"no VOC{year} under {root}: expected {root}/VOCdevkit/VOC{year}/Annotations")


def voc_image_ids(root: str | os.PathLike, year: str, image_set: str = "trainval") -> list[str]:
    """Ids listed in ``ImageSets/Main/<image_set>.txt``."""
    path = voc_dir(root, year) / "ImageSets" / "Main" / f"{image_set}.txt"
    if not path.is_file():
        raise ValueError(f"missing image list {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def read_voc_annotation(path: str | os.PathLike, remove_hards: bool = False) -> VOCAnnotation:
    """Parse one XML file; ``remove_hards`` drops objects marked truncated or difficult (LOST ``--no_hard``).

    Raises:
        ValueError: the file is not well-formed XML, or lacks ``<filename>``, ``<size>`` (``<width>``,
            ``<height>``) or an object's ``<bndbox>`` coordinate (named, with the file).
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise ValueError(f"{path} is not a well-formed VOC XML file: {error}") from None
    boxes, classes = [], []
    for number, obj in enumerate(root.iter("object")):
        hard = obj.findtext("truncated", "0").strip() == "1" or obj.findtext("difficult", "0").strip() == "1"
        if remove_hards and hard:
            continue
        where = f"object {number} (<{obj.findtext('name', '').strip() or '?'}>)"
        xmin, ymin, xmax, ymax = (
            _number(path, obj, f"bndbox/{tag}", where) for tag in ("xmin", "ymin", "xmax", "ymax")
        )
        boxes.append([xmin - 1, ymin - 1, xmax, ymax])
        classes.append(obj.findtext("name", "").strip())
    width, height = (_number(path, root, f"size/{tag}", "the annotation") for tag in ("width", "height"))
    name = (root.findtext("filename") or "").strip()
    if not name:
        raise ValueError(f"{path}: the annotation has no <filename>")
    boxes = np.array(boxes, np.int64).reshape(-1, 4)  # (G, 4)
    return VOCAnnotation(name, (width, height), boxes, classes)


def _number(path: str | os.PathLike, element: ET.Element, tag: str, where: str) -> int:
    """The integer text of ``element``'s ``tag`` (a path like ``bndbox/xmin``); VOC writes some as ``"263.0"``."""
    text = element.findtext(tag)
    if text is None or not text.strip():
        raise ValueError(f"{path}: {where} has no <{tag.replace('/', '><')}>")
    try:
        return int(float(text))
    except ValueError:
        raise ValueError(f"{path}: <{tag.replace('/', '><')}> of {where} is {text.strip()!r}, not a number") from None


def write_voc_annotation(path: str | os.PathLike, name: str, size: tuple[int, int], boxes, classes) -> Path:
    """Write a minimal VOC XML file (boxes given 0-based end exclusive, stored 1-based inclusive)."""
    from ..utils import atomic_write_bytes

    objects = "".join(
        f"<object><name>{c}</name><truncated>0</truncated><difficult>0</difficult><bndbox>"
        f"<xmin>{int(b[0]) + 1}</xmin><ymin>{int(b[1]) + 1}</ymin><xmax>{int(b[2])}</xmax><ymax>{int(b[3])}</ymax>"
        "</bndbox></object>"
        for b, c in zip(boxes, classes, strict=True)
    )
    xml = (
        f"<annotation><filename>{name}</filename><size><width>{size[0]}</width><height>{size[1]}</height>"
        f"<depth>3</depth></size>{objects}</annotation>\n"
    )
    return atomic_write_bytes(path, xml.encode())
