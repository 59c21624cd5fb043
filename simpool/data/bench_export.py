"""Write a bench variant in a standard layout, so every loader runs on it.

Layouts (``FORMATS``), with ``<cls>`` the class folder ``NN_name`` (sorted folders give labels 0..9):

- ``imagefolder``: ``OUT/<split>/<cls>/<id>.png`` (torchvision ``ImageFolder``);
- ``wsol``: wsolevaluation (Choe et al., CVPR 2020): images ``OUT/dataset/<split>/<cls>/<id>.png`` and
  ``OUT/metadata/<split>/{image_ids,class_labels,image_sizes,localization}.txt``, CSV without a header,
  paths relative to ``OUT/dataset``, boxes ``x0,y0,x1,y1`` in pixels (``x1``, ``y1`` exclusive); the exact masks
  as 0/255 PNGs ``OUT/masks/<split>/<cls>/<id>.png``, listed in ``OUT/metadata/<split>/masks.txt`` in
  wsolevaluation's OpenImages format (``<image_id>,<mask path>,``, paths relative to ``OUT/masks``);
- ``voc``: ``OUT/VOCdevkit/VOC2007/{JPEGImages,Annotations,SegmentationClass,ImageSets/{Main,Segmentation}}``
  (torchvision ``VOCDetection``/``VOCSegmentation`` with ``year="2007"``); XML boxes 1-based inclusive,
  so ``xmin = x0 + 1, xmax = x1``; masks hold ``label + 1`` on the object, 0 elsewhere;
- ``in9``: ImageNet-9 (Xiao et al., ICLR 2021): ``OUT/<variant>/val/<cls>/<id>.png`` and
  ``OUT/fg_mask/val/<cls>/<id>.npy``; variant ``all`` writes the eight variants.

Every export records its settings in ``OUT/bench.json`` (:data:`MANIFEST`): the format, the
:class:`~simpool.data.bench.BenchConfig` and one entry per part written (split, variant, number of images).
A later export into the same folder adds parts (another split) but refuses to mix: another format, image size
or seed, or another variant or number of images for files already there, is a ``ValueError`` naming the
differing settings, unless ``overwrite=True``, which first deletes the old export's files (all of them when the
format or bench settings differ, else those of the parts it replaces).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
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
    for i, label, image, mask, box in _items(data, progress):
        image_id = f"{data.split}/{class_dir(label)}/{i:06d}.png"
        _write_png(out / "dataset" / image_id, image)
        _write_png(out / "masks" / image_id, (mask > 0).astype(np.uint8) * 255)  # (H, W) 0/255
        meta.masks[image_id], meta.ignore[image_id] = [image_id], ""
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


MANIFEST = "bench.json"


def export(
    out: str | os.PathLike,
    format: str = "imagefolder",
    variant: str = "original",
    split: str = "test",
    config: BenchConfig | None = None,
    num_images: int | None = None,
    fashion_mnist_dir: str | os.PathLike | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> list[Path]:
    """Write ``split`` of a bench ``variant`` (``"all"`` for every variant; only with ``in9``) in ``format``.

    Args:
        overwrite: replace an export already in ``out`` whose settings differ (its files are deleted first);
            without it such an export is an error, since the two would mix.

    Raises:
        ValueError: an unknown format or variant, or ``out`` holds an export with other settings (named).
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; valid formats: {', '.join(FORMATS)}")
    if variant == "all" and format != "in9":
        raise ValueError("variant='all' is for the in9 format only; pick one of " + ", ".join(VARIANTS))
    variants = list(VARIANTS) if variant == "all" else [variant]
    if format == "in9" and "original" not in variants:
        variants.append("original")  # fg_mask/ comes with the original images
    out = Path(out)
    benches = [SimPoolBench(split, name, config, num_images, fashion_mnist_dir) for name in variants]
    settings = {"format": format, "config": dataclasses.asdict(benches[0].config)}
    parts = [{"split": split, "variant": data.variant, "num_images": len(data)} for data in benches]
    _claim(out, settings, parts, overwrite)
    return [FORMATS[format](data, out, progress) for data in benches]


def _part_key(format: str, part: dict) -> str:
    """What a part's files are named by: the variant for ``in9`` (always ``<variant>/val``), else the split."""
    return part["variant"] if format == "in9" else part["split"]


def _part_files(out: Path, format: str, part: dict) -> list[Path]:
    """The files and folders of one part of an export in ``out`` that exist."""
    split, variant = part["split"], part["variant"]
    if format == "imagefolder":
        paths = [out / split]
    elif format == "wsol":
        paths = [out / "dataset" / split, out / "metadata" / split, out / "masks" / split]
    elif format == "voc":
        root = out / "VOCdevkit" / "VOC2007"
        paths = [root / "ImageSets" / folder / f"{split}.txt" for folder in ("Main", "Segmentation")]
        for folder in ("JPEGImages", "Annotations", "SegmentationClass"):
            paths += sorted((root / folder).glob(f"{split}_*"))
    else:  # in9
        paths = [out / variant] + ([out / "fg_mask"] if variant == "original" else [])
    return [path for path in paths if path.exists()]


def _remove(paths: list[Path]) -> None:
    for path in paths:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def _claim(out: Path, settings: dict, parts: list[dict], overwrite: bool) -> None:
    """Check that writing ``parts`` with ``settings`` into ``out`` mixes no export, then record them in the manifest.

    Raises:
        ValueError: ``out`` holds an export whose settings differ (and not ``overwrite``).
    """
    format = settings["format"]
    path = out / MANIFEST
    old = json.loads(path.read_text()) if path.is_file() else None
    if old is not None and not isinstance(old, dict):
        raise ValueError(f"{path} is not a bench export manifest (a JSON object)")
    kept: list[dict] = []
    stale: list[Path] = []
    differences: list[str] = []
    if old is None:
        # files of an export made before manifests, or of something else, where this export writes
        stale = [file for part in parts for file in _part_files(out, format, part)]
        if stale:
            differences.append(f"files without a {MANIFEST} manifest: {', '.join(str(p) for p in stale[:3])}")
    elif {key: old.get(key) for key in settings} != settings:
        for key, value in settings.items():
            if isinstance(value, dict):
                before = old.get(key) or {}
                differences += [f"{k} {before.get(k)!r} -> {v!r}" for k, v in value.items() if before.get(k) != v]
            elif old.get(key) != value:
                differences.append(f"{key} {old.get(key)!r} -> {value!r}")
        stale = [file for part in old.get("parts", []) for file in _part_files(out, old.get("format"), part)]
        stale.append(path)
    else:
        new = {_part_key(format, part): part for part in parts}
        for part in old.get("parts", []):
            replacing = new.get(_part_key(format, part))
            if replacing is None:
                kept.append(part)
            elif replacing != part:
                changed = [f"{k} {part.get(k)!r} -> {v!r}" for k, v in replacing.items() if part.get(k) != v]
                differences.append(f"{_part_key(format, part)}: {', '.join(changed)}")
                stale += _part_files(out, format, part)
    if differences and not overwrite:
        raise ValueError(
            f"{out} already holds a bench export with other settings ({'; '.join(differences)}): writing into it "
            "would mix the two; choose another folder, or overwrite=True (--overwrite) to replace the old export"
        )
    _remove(stale)
    out.mkdir(parents=True, exist_ok=True)
    kept_keys = {_part_key(format, part) for part in kept}
    manifest = {**settings, "parts": kept + [part for part in parts if _part_key(format, part) not in kept_keys]}
    atomic_write_bytes(path, (json.dumps(manifest, indent=2) + "\n").encode())
