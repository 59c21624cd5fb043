"""Write a bench variant in a standard layout, so every loader runs on it.

Layouts (``FORMATS``), with ``<cls>`` the class folder ``NN_name`` (sorted folders give labels 0..9):

- ``imagefolder``: ``OUT/<split>/<cls>/<id>.png`` (torchvision ``ImageFolder``);
- ``wsol``: wsolevaluation (Choe et al., CVPR 2020): images ``OUT/dataset/<split>/<cls>/<id>.png`` and
  ``OUT/metadata/<split>/{image_ids,class_labels,image_sizes,localization}.txt``, CSV without a header,
  paths relative to ``OUT/dataset``, boxes ``x0,y0,x1,y1`` in pixels (``x1``, ``y1`` exclusive);
- ``voc``: ``OUT/VOCdevkit/VOC2007/{JPEGImages,Annotations,SegmentationClass,ImageSets/{Main,Segmentation}}``
  (torchvision ``VOCDetection``/``VOCSegmentation`` with ``year="2007"``); XML boxes 1-based inclusive,
  so ``xmin = x0 + 1, xmax = x1``; masks hold ``label + 1`` on the object, 0 elsewhere;
- ``in9``: ImageNet-9 (Xiao et al., ICLR 2021): ``OUT/<variant>/val/<cls>/<id>.png`` and
  ``OUT/fg_mask/val/<cls>/<id>.npy``; variant ``all`` writes the eight variants.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..utils import atomic_write_bytes
from .bench import VARIANTS, BenchConfig, SimPoolBench
from .fashion_mnist import CLASSES
from .voc import write_voc_annotation
from .wsol import WSOLMetadata, write_wsol_metadata


def class_dir(label: int) -> str:
    """``NN_name``: a folder name that sorts in label order (``00_t-shirt_top`` ... ``09_ankle_boot``)."""
    return f"{label:02d}_" + re.sub(r"[^a-z0-9-]+", "_", CLASSES[label].lower())


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", image[..., ::-1] if image.ndim == 3 else image)  # cv2 wants BGR
    if not ok:
        raise OSError(f"could not encode {path}")
    path.write_bytes(data.tobytes())


def _lines(path: Path, lines: list[str]) -> None:
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def _items(data: SimPoolBench, progress: bool):
    for i in tqdm(range(len(data)), desc=f"export {data.split}/{data.variant}", disable=not progress, unit="img"):
        image, mask, box = data.render(i)
        yield i, int(data.labels[i]), image, mask, box


def export_imagefolder(data: SimPoolBench, out: Path, progress: bool = True) -> Path:
    for i, label, image, _, _ in _items(data, progress):
        _write_png(out / data.split / class_dir(label) / f"{i:06d}.png", image)
    return out / data.split


def export_wsol(data: SimPoolBench, out: Path, progress: bool = True) -> Path:
    meta = WSOLMetadata(image_ids=[])
    for i, label, image, _, box in _items(data, progress):
        image_id = f"{data.split}/{class_dir(label)}/{i:06d}.png"
        _write_png(out / "dataset" / image_id, image)
        meta.image_ids.append(image_id)
        meta.class_labels[image_id] = label
        meta.image_sizes[image_id] = (image.shape[1], image.shape[0])  # (W, H)
        meta.boxes[image_id] = np.asarray([box], dtype=np.int64)  # (1, 4)
    return write_wsol_metadata(out / "metadata" / data.split, meta)


def export_voc(data: SimPoolBench, out: Path, progress: bool = True) -> Path:
    root = out / "VOCdevkit" / "VOC2007"
    for folder in ("JPEGImages", "Annotations", "SegmentationClass", "ImageSets/Main", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    names = []
    for i, label, image, mask, box in _items(data, progress):
        name = f"{data.split}_{i:06d}"
        ok, jpeg = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise OSError(f"could not encode {name}.jpg")
        (root / "JPEGImages" / f"{name}.jpg").write_bytes(jpeg.tobytes())
        size = (image.shape[1], image.shape[0])  # (W, H)
        write_voc_annotation(root / "Annotations" / f"{name}.xml", f"{name}.jpg", size, [box], [class_dir(label)[3:]])
        _write_png(root / "SegmentationClass" / f"{name}.png", (mask * (label + 1)).astype(np.uint8))
        names.append(name)
    for folder in ("Main", "Segmentation"):
        _lines(root / "ImageSets" / folder / f"{data.split}.txt", names)
    return root


def export_in9(data: SimPoolBench, out: Path, progress: bool = True) -> Path:
    for i, label, image, mask, _ in _items(data, progress):
        _write_png(out / data.variant / "val" / class_dir(label) / f"{i:06d}.png", image)
        if data.variant == "original":
            path = out / "fg_mask" / "val" / class_dir(label) / f"{i:06d}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, mask, allow_pickle=False)
    return out / data.variant


FORMATS: dict[str, Callable[[SimPoolBench, Path, bool], Path]] = {
    "imagefolder": export_imagefolder,
    "wsol": export_wsol,
    "voc": export_voc,
    "in9": export_in9,
}


def export(
    out: str | os.PathLike,
    format: str = "imagefolder",
    variant: str = "original",
    split: str = "test",
    config: BenchConfig | None = None,
    num_images: int | None = None,
    fashion_mnist_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[Path]:
    """Write ``split`` of a bench ``variant`` (``"all"`` for every variant; only with ``in9``) in ``format``."""
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; valid formats: {', '.join(FORMATS)}")
    if variant == "all" and format != "in9":
        raise ValueError("variant='all' is for the in9 format only; pick one of " + ", ".join(VARIANTS))
    variants = list(VARIANTS) if variant == "all" else [variant]
    if format == "in9" and "original" not in variants:
        variants.append("original")  # fg_mask/ comes with the original images
    written = []
    for name in variants:
        data = SimPoolBench(split, name, config, num_images, fashion_mnist_dir)
        written.append(FORMATS[format](data, Path(out), progress))
    return written
