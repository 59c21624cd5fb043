"""``attention_report``: every map of every checkpoint on every image, as PNGs, grids, scores and a gallery."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data.folders import IMG_EXTENSIONS, UnreadableImageError, load_rgb
from ..utils import atomic_write_bytes, write_json
from .boxes import BOX_COLORS, GROUND_TRUTH_COLOR, attention_box, box_iou, boxes_for, draw_boxes, scale_box
from .figures import figure_grid, gamma_label, save_png
from .gallery import write_gallery
from .maps import compute_maps, input_channels, load_model, set_image_size
from .masks import mass_mask, overlay_mask
from .overlay import overlay


@dataclass
class Checkpoint:
    """One model to draw: a label for its column, its weights, and how to build it."""

    label: str
    path: Path
    pool: str = "auto"
    pool_kwargs: dict = field(default_factory=dict)


def parse_checkpoints(
    specs: list[str], pool: str = "auto", gammas: list[str] | None = None, pool_kwargs: dict | None = None
) -> list[Checkpoint]:
    """``[LABEL=]PATH`` specs as :class:`Checkpoint` s built with ``pool`` and ``pool_kwargs``; with ``gammas``
    (``"none"``: no gamma), one gamma each, labelled by it."""
    if gammas is not None and len(gammas) != len(specs):
        raise ValueError(f"--gammas has {len(gammas)} values for {len(specs)} checkpoints")
    checkpoints = []
    for i, spec in enumerate(specs):
        label, _, path = spec.rpartition("=") if "=" in spec and not Path(spec).exists() else ("", "", spec)
        checkpoint = Checkpoint(label or Path(path).stem, Path(path), pool, dict(pool_kwargs or {}))
        if gammas is not None:
            gamma = None if gammas[i].lower() == "none" else float(gammas[i])
            checkpoint.pool_kwargs["gamma"] = gamma
            checkpoint.label = label or gamma_label(gamma)
        checkpoints.append(checkpoint)
    labels = [c.label for c in checkpoints]
    if len(set(labels)) != len(labels):
        raise ValueError(f"checkpoint labels must differ, got {labels}; name them LABEL=PATH")
    return checkpoints


def find_images(inputs: list[str | Path]) -> list[Path]:
    """Image files among ``inputs``: files as given, folders searched recursively in sorted order."""
    found = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS and p.is_file())
        elif item.is_file():
            found.append(item)
        else:
            raise ValueError(f"no image or folder at {item}")
    if not found:
        raise ValueError(f"no images ({', '.join(IMG_EXTENSIONS)}) in {[str(i) for i in inputs]}")
    return found


def read_image(path: Path) -> np.ndarray:
    """An image file as ``(H, W, 3)`` uint8 RGB."""
    return np.asarray(load_rgb(path))


def to_input(images: list[np.ndarray], size: int, in_chans: int, mean, std) -> torch.Tensor:
    """Resize (bicubic) to ``size x size`` and normalise: ``(B, in_chans, size, size)``."""
    from PIL import Image

    batch = []
    for image in images:
        resized = Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC)
        batch.append(np.asarray(resized.convert("L" if in_chans == 1 else "RGB"), dtype=np.float32) / 255.0)
    x = torch.from_numpy(np.stack(batch))  # (B, S, S) or (B, S, S, 3)
    x = x[:, None] if in_chans == 1 else x.permute(0, 3, 1, 2)  # (B, C, S, S)
    mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)[:, :in_chans]
    std = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)[:, :in_chans]
    return (x - mean) / std


def attention_report(
    model_name: str,
    checkpoints: list[Checkpoint],
    inputs: list[str | Path],
    out: str | Path,
    image_size: int | None = None,
    boxes: dict | None = None,
    mass: float = 0.6,
    box_threshold: float = 0.5,
    display: int = 224,
    batch_size: int = 4,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    grid_rows: int = 8,
    timm_kwargs: dict | None = None,
    num_classes: int | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> dict:
    """Draw every map of every checkpoint on every image; returns the scores written to ``scores.json``.

    Writes under ``out``: ``<image>/<label>/<map>.png`` (overlays), ``mask.png`` (``mass`` of the main
    map, Figure C3), ``box.png`` (box of the main map in its color, ground truth green, Figure C4),
    ``maps.npz`` (raw maps); ``grid_attention_NN.png``, ``grid_mask_NN.png``, ``grid_box_NN.png``
    (input | checkpoint 1 | checkpoint 2 ..., ``grid_rows`` images per page, Figures 1/C2/C3/C4, and
    C5/C6 when the checkpoints are a gamma sweep); ``blocks_<label>_NN.png`` for CLS ViTs (input |
    block 1 ... block L | the other checkpoints' main maps, Figure C7); ``gallery.html``; ``scores.json``.

    Every checkpoint is built as ``model_name`` with ``timm_kwargs`` and ``num_classes`` (None: as many as its
    classifier has). Scores per image and checkpoint: ``confidence`` (top-1 softmax probability, when the model has a
    classifier), ``predicted`` class index, ``mask_area`` (share of the image in the mass mask) and
    ``iou`` (predicted vs. best-matching ground-truth box, when ``boxes`` has the image).
    """
    out = Path(out)
    paths, originals = _readable(find_images(inputs))
    names = [f"{i:04d}_{p.stem}" for i, p in enumerate(paths)]
    shown = [np.asarray(_resize(img, display)) for img in originals]  # (display, display, 3) each
    results: dict[str, dict] = {}  # label -> {"maps": {name: (N, h, w)}, "main": str, "logits": (N, K) | None}
    for checkpoint in checkpoints:
        model = load_model(
            model_name, checkpoint.path, checkpoint.pool, checkpoint.pool_kwargs, num_classes, **(timm_kwargs or {})
        )
        size = image_size or _native_size(model)
        set_image_size(model, size).to(device)
        config = _data_config(model)
        chans = input_channels(model)
        maps, logits = {}, []
        starts = range(0, len(paths), batch_size)
        for start in tqdm(starts, desc=checkpoint.label, disable=not progress, unit="batch"):
            x = to_input(originals[start : start + batch_size], size, chans, mean or config[0], std or config[1])
            x = x.to(device)
            for key, value in compute_maps(model, x).items():
                maps.setdefault(key, []).append(value)  # (b, h, w)
            if getattr(model, "num_classes", 0):
                with torch.no_grad():
                    logits.append(model(x).float().cpu())  # (b, K)
        maps = {key: torch.cat(value).numpy() for key, value in maps.items()}  # (N, h, w)
        results[checkpoint.label] = {
            "maps": maps,
            "main": next(iter(maps)),
            "logits": torch.cat(logits) if logits else None,
        }

    scores, entries = [], []
    cells: dict[tuple[int, str], dict[str, np.ndarray]] = {}  # (image, label) -> attention/mask/box pictures
    for i, (name, path) in enumerate(zip(names, paths, strict=True)):
        H, W = originals[i].shape[:2]
        truth = boxes_for(path, boxes) if boxes else []
        entry = {"name": name, "scores": {}, "pictures": [("input", shown[i])]}
        record = {"image": str(path), "name": name, "ground_truth": [list(b) for b in truth], "models": {}}
        for k, (label, result) in enumerate(results.items()):
            folder = out / name / label
            main = result["maps"][result["main"]][i]  # (h, w)
            overlays = {key: overlay(shown[i], value[i]) for key, value in result["maps"].items()}
            for key, picture in overlays.items():
                save_png(picture, folder / f"{key}.png")
            mask = mass_mask(main, mass)  # (h, w)
            box = attention_box(main, (W, H), box_threshold)
            color = BOX_COLORS[k % len(BOX_COLORS)]
            drawn = [scale_box(b, (W, H), (display, display)) for b in [*truth, box]]
            pictures = {
                "mask": overlay_mask(shown[i], mask),
                "box": draw_boxes(shown[i], drawn, [GROUND_TRUTH_COLOR] * len(truth) + [color]),
            }
            for key, picture in pictures.items():
                save_png(picture, folder / f"{key}.png")
            _save_npz({key: value[i] for key, value in result["maps"].items()}, folder / "maps.npz")
            model_scores = {"main_map": result["main"], "box": list(box), "mask_area": float(mask.mean())}
            if result["logits"] is not None:
                probabilities = result["logits"][i].softmax(-1)
                model_scores["confidence"] = float(probabilities.max())
                model_scores["predicted"] = int(probabilities.argmax())
            if truth:
                model_scores["iou"] = max(box_iou(box, b) for b in truth)
            record["models"][label] = model_scores
            for key in ("confidence", "iou", "mask_area"):
                entry["scores"][f"{label} {key}"] = model_scores.get(key)
            cells[i, label] = {"attention": overlays[result["main"]], **pictures}
            entry["pictures"] += [(f"{label} {result['main']}", overlays[result["main"]])]
            entry["pictures"] += [(f"{label} {key}", picture) for key, picture in pictures.items()]
        scores.append(record)
        entries.append(entry)

    labels = list(results)
    for page, start in enumerate(range(0, len(paths), grid_rows)):
        chunk = range(start, min(start + grid_rows, len(paths)))
        for kind in ("attention", "mask", "box"):
            rows = [[shown[i]] + [cells[i, label][kind] for label in labels] for i in chunk]
            figure_grid(rows, ["input", *labels], out / f"grid_{kind}_{page:02d}.png", cell=display)
        for label, result in results.items():
            blocks = sorted((k for k in result["maps"] if k.startswith("cls_block")), key=lambda k: int(k[9:]))
            if not blocks:
                continue
            others = [other for other in labels if other != label and results[other]["main"] == "pool"]
            rows = [
                [shown[i]]
                + [overlay(shown[i], result["maps"][b][i]) for b in blocks]
                + [cells[i, other]["attention"] for other in others]
                for i in chunk
            ]
            columns = ["input", *[f"block {b[9:]}" for b in blocks], *others]
            figure_grid(rows, columns, out / f"blocks_{label}_{page:02d}.png", cell=display)
    write_gallery(entries, out / "gallery.html", title=f"simpool attention: {model_name}")
    summary = {"model": model_name, "image_size": image_size, "mass": mass, "images": scores}
    write_json(out / "scores.json", summary)
    return summary


def _readable(paths: list[Path]) -> tuple[list[Path], list[np.ndarray]]:
    """The images that decode, with their paths; unreadable files are skipped and named in one warning.

    Raises:
        ValueError: none of ``paths`` is readable.
    """
    kept, images, skipped = [], [], []
    for path in paths:
        try:
            images.append(read_image(path))
            kept.append(path)
        except UnreadableImageError as error:
            skipped.append(str(error))
    if skipped:
        names = "; ".join(skipped[:3]) + (f"; and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        if not kept:
            raise ValueError(f"no readable image among {len(paths)} file(s): {names}")
        warnings.warn(f"skipped {len(skipped)} unreadable image(s) of {len(paths)}: {names}", stacklevel=3)
    return kept, images


def _resize(image: np.ndarray, size: int):
    from PIL import Image

    return Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC)


def _native_size(model) -> int:
    patch_embed = getattr(model, "patch_embed", None)
    return int(patch_embed.img_size[0]) if patch_embed is not None and patch_embed.img_size else 224


def _data_config(model) -> tuple[tuple[float, ...], tuple[float, ...]]:
    from timm.data import resolve_data_config

    config = resolve_data_config({}, model=model)
    return tuple(config["mean"]), tuple(config["std"])


def _save_npz(arrays: dict[str, np.ndarray], path: Path) -> None:
    import io

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
