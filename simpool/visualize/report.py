"""``attention_report``: every map of every checkpoint on every image, as PNGs, grids, scores and a gallery."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data.folders import IMG_EXTENSIONS, UnreadableImageError, load_rgb
from ..models.loading import load_model, set_image_size
from ..utils import atomic_write_bytes, write_json
from .boxes import BOX_COLORS, GROUND_TRUTH_COLOR, attention_box, box_iou, boxes_for, draw_boxes, scale_box
from .figures import figure_grid, gamma_label, save_png
from .gallery import write_gallery
from .maps import compute_maps, input_channels
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


@dataclass
class ReportConfig:
    """How :func:`attention_report` reads, scores and draws, beside the model, checkpoints, images and folder.

    Attributes:
        image_size: input side in pixels (the paper: 896); None: the model's own.
        boxes: ground truth ``{image: [box, ...]}`` (:func:`~simpool.visualize.boxes.read_boxes`); None: none.
        mass: share of the main map's attention mass that the mask keeps (Figure C3).
        box_threshold: threshold of the normalised main map for its box (Figure C4).
        display: side in pixels of each picture.
        batch_size: images per forward pass.
        mean, std: input normalisation; None: timm's for the model.
        grid_rows: images per grid page.
        model_kwargs: timm's arguments of every checkpoint's model.
        num_classes: classifier outputs; None: as many as each checkpoint's classifier has.
        device: where the models run.
        progress: a progress bar per checkpoint.
    """

    image_size: int | None = None
    boxes: dict | None = None
    mass: float = 0.6
    box_threshold: float = 0.5
    display: int = 224
    batch_size: int = 4
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    grid_rows: int = 8
    model_kwargs: dict = field(default_factory=dict)
    num_classes: int | None = None
    device: torch.device | str = "cpu"
    progress: bool = True


@dataclass
class Maps:
    """Every map of one checkpoint on every image (the collect phase)."""

    maps: dict[str, np.ndarray]  # name -> (N, h, w); the first is the model's main map
    logits: torch.Tensor | None  # (N, K); None: the model has no classifier

    @property
    def main(self) -> str:
        return next(iter(self.maps))


@dataclass
class Cell:
    """One image under one checkpoint: its scores (``scores.json``), the mask and box they are read from, and
    its pictures (``attention``, ``mask``, ``box``) once drawn."""

    scores: dict
    mask: np.ndarray  # (h, w) bool
    box: tuple[int, int, int, int]
    pictures: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class ImageRow:
    """One image through the report, with a :class:`Cell` per checkpoint label: the report's one accumulator."""

    index: int
    name: str
    path: Path
    original: np.ndarray  # (H, W, 3) uint8
    shown: np.ndarray  # (display, display, 3) uint8
    truth: list  # ground-truth boxes in the original's pixels
    cells: dict[str, Cell] = field(default_factory=dict)

    def record(self) -> dict:
        """The image's entry of ``scores.json``."""
        return {
            "image": str(self.path),
            "name": self.name,
            "ground_truth": [list(b) for b in self.truth],
            "models": {label: cell.scores for label, cell in self.cells.items()},
        }

    def gallery_entry(self) -> dict:
        """The image's row of the gallery: the input, then per checkpoint its main map, mask and box."""
        scores, pictures = {}, [("input", self.shown)]
        for label, cell in self.cells.items():
            scores |= {f"{label} {key}": cell.scores.get(key) for key in ("confidence", "iou", "mask_area")}
            pictures.append((f"{label} {cell.scores['main_map']}", cell.pictures["attention"]))
            pictures += [(f"{label} {key}", cell.pictures[key]) for key in ("mask", "box")]
        return {"name": self.name, "scores": scores, "pictures": pictures}


def attention_report(
    model_name: str,
    checkpoints: list[Checkpoint],
    inputs: list[str | Path],
    out: str | Path,
    config: ReportConfig | None = None,
) -> dict:
    """Draw every map of every checkpoint on every image; returns the scores written to ``scores.json``.

    Writes under ``out``: ``<image>/<label>/<map>.png`` (overlays), ``mask.png`` (``mass`` of the main
    map, Figure C3), ``box.png`` (box of the main map in its color, ground truth green, Figure C4),
    ``maps.npz`` (raw maps); ``grid_attention_NN.png``, ``grid_mask_NN.png``, ``grid_box_NN.png``
    (input | checkpoint 1 | checkpoint 2 ..., ``grid_rows`` images per page, Figures 1/C2/C3/C4, and
    C5/C6 when the checkpoints are a gamma sweep); ``blocks_<label>_NN.png`` for CLS ViTs (input |
    block 1 ... block L | the other checkpoints' main maps, Figure C7); ``gallery.html``; ``scores.json``.

    Every checkpoint is built as ``model_name`` by :func:`~simpool.models.loading.load_model`. Scores per image
    and checkpoint: ``confidence`` (top-1 softmax probability, when the model has a classifier), ``predicted``
    class index, ``mask_area`` (share of the image in the mass mask) and ``iou`` (predicted vs. best-matching
    ground-truth box, when ``config.boxes`` has the image).

    Three phases: collect the maps (one model at a time), score every image under every checkpoint, draw.
    """
    config = config or ReportConfig()
    out = Path(out)
    rows = read_rows(inputs, config)
    originals = [row.original for row in rows]
    results = {c.label: collect_maps(model_name, c, originals, config) for c in checkpoints}
    for row in rows:
        for k, (label, maps) in enumerate(results.items()):
            row.cells[label] = score_cell(row, maps, config)
            draw_cell(row, label, maps, BOX_COLORS[k % len(BOX_COLORS)], out / row.name / label, config.display)
    draw_grids(rows, results, out, config)
    write_gallery([row.gallery_entry() for row in rows], out / "gallery.html", title=f"simpool attention: {model_name}")
    images = [row.record() for row in rows]
    summary = {"model": model_name, "image_size": config.image_size, "mass": config.mass, "images": images}
    write_json(out / "scores.json", summary)
    return summary


def read_rows(inputs: list[str | Path], config: ReportConfig) -> list[ImageRow]:
    """The readable images among ``inputs`` (:func:`find_images`), numbered, resized for display, with their boxes."""
    paths, originals = _readable(find_images(inputs))
    return [
        ImageRow(
            index=i,
            name=f"{i:04d}_{path.stem}",
            path=path,
            original=original,
            shown=np.asarray(_resize(original, config.display)),
            truth=boxes_for(path, config.boxes) if config.boxes else [],
        )
        for i, (path, original) in enumerate(zip(paths, originals, strict=True))
    ]


def collect_maps(model_name: str, checkpoint: Checkpoint, images: list[np.ndarray], config: ReportConfig) -> Maps:
    """Every map (and the logits) of one checkpoint's model on ``images``, in batches."""
    model = load_model(
        model_name,
        pool=checkpoint.pool,
        pool_kwargs=checkpoint.pool_kwargs,
        model_kwargs=config.model_kwargs,
        checkpoint=checkpoint.path,
        num_classes=config.num_classes,
    )
    size = config.image_size or _native_size(model)
    set_image_size(model, size).to(config.device)
    mean, std = _data_config(model)
    chans = input_channels(model)
    maps, logits = {}, []
    starts = range(0, len(images), config.batch_size)
    for start in tqdm(starts, desc=checkpoint.label, disable=not config.progress, unit="batch"):
        batch = images[start : start + config.batch_size]
        x = to_input(batch, size, chans, config.mean or mean, config.std or std).to(config.device)  # (b, c, S, S)
        for key, value in compute_maps(model, x).items():
            maps.setdefault(key, []).append(value)  # (b, h, w)
        if getattr(model, "num_classes", 0):
            with torch.no_grad():
                logits.append(model(x).float().cpu())  # (b, K)
    maps = {key: torch.cat(value).numpy() for key, value in maps.items()}  # (N, h, w)
    return Maps(maps, torch.cat(logits) if logits else None)


def score_cell(row: ImageRow, maps: Maps, config: ReportConfig) -> Cell:
    """The mass mask and box of the image's main map, and their scores."""
    H, W = row.original.shape[:2]
    main = maps.maps[maps.main][row.index]  # (h, w)
    mask = mass_mask(main, config.mass)  # (h, w)
    box = attention_box(main, (W, H), config.box_threshold)
    scores = {"main_map": maps.main, "box": list(box), "mask_area": float(mask.mean())}
    if maps.logits is not None:
        probabilities = maps.logits[row.index].softmax(-1)  # (K,)
        scores["confidence"] = float(probabilities.max())
        scores["predicted"] = int(probabilities.argmax())
    if row.truth:
        scores["iou"] = max(box_iou(box, b) for b in row.truth)
    return Cell(scores, mask, box)


def draw_cell(row: ImageRow, label: str, maps: Maps, color, folder: Path, display: int) -> None:
    """Overlays of every map, the mask and the box of one cell, written to ``folder`` and kept in the cell."""
    cell = row.cells[label]
    H, W = row.original.shape[:2]
    overlays = {key: overlay(row.shown, value[row.index]) for key, value in maps.maps.items()}
    drawn = [scale_box(b, (W, H), (display, display)) for b in [*row.truth, cell.box]]
    colors = [GROUND_TRUTH_COLOR] * len(row.truth) + [color]
    pictures = {"mask": overlay_mask(row.shown, cell.mask), "box": draw_boxes(row.shown, drawn, colors)}
    for key, picture in (overlays | pictures).items():
        save_png(picture, folder / f"{key}.png")
    _save_npz({key: value[row.index] for key, value in maps.maps.items()}, folder / "maps.npz")
    cell.pictures = {"attention": overlays[maps.main], **pictures}


def draw_grids(rows: list[ImageRow], results: dict[str, Maps], out: Path, config: ReportConfig) -> None:
    """Per page of ``config.grid_rows`` images: the attention, mask and box grids, and each CLS ViT's blocks."""
    labels = list(results)
    for page, start in enumerate(range(0, len(rows), config.grid_rows)):
        chunk = rows[start : start + config.grid_rows]
        for kind in ("attention", "mask", "box"):
            grid = [[row.shown] + [row.cells[label].pictures[kind] for label in labels] for row in chunk]
            figure_grid(grid, ["input", *labels], out / f"grid_{kind}_{page:02d}.png", cell=config.display)
        for label, maps in results.items():
            others = [other for other in labels if other != label and results[other].main == "pool"]
            _draw_blocks(chunk, maps, others, out / f"blocks_{label}_{page:02d}.png", config.display)


def _draw_blocks(chunk: list[ImageRow], maps: Maps, others: list[str], path: Path, display: int) -> None:
    """Figure C7: input | block 1 ... block L of a CLS ViT | the ``others``' main maps; nothing without blocks."""
    blocks = sorted((k for k in maps.maps if k.startswith("cls_block")), key=lambda k: int(k[9:]))
    if not blocks:
        return
    rows = [
        [row.shown]
        + [overlay(row.shown, maps.maps[b][row.index]) for b in blocks]
        + [row.cells[other].pictures["attention"] for other in others]
        for row in chunk
    ]
    figure_grid(rows, ["input", *[f"block {b[9:]}" for b in blocks], *others], path, cell=display)


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
