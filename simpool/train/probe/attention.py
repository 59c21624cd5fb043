"""Each probing head's attention on the test images with boxes, scored beside the maps that ignore the image.

The test split's boxes and masks come from its wsolevaluation metadata (``simpool bench export --format wsol``
writes both: ``metadata/<split>/localization.txt`` and ``masks.txt``, the masks under ``masks/``). Each head's
map (at its selected lr) is scored by :func:`~simpool.evaluate.attention_quality.attention_quality`
(MaxBoxAccV2 and BoxAcc@50; PxAP and the mask mass with masks), and so are the image-independent baselines
(:func:`~simpool.evaluate.attention_quality.baseline_scores`): ``uniform``, ``centre``, ``box_prior`` (the mean
object of the training split, from its metadata's masks or boxes; of the test split itself when the training
split has no metadata) and ``mean_map/<head>``, each head's maps averaged over the test images and used for
every image. A head's attention says where the object is only where the backbone has learned the object
(:data:`LEARNED_RULE`); elsewhere its scores measure position, which the baselines measure too.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torchvision import transforms

from ...data.folders import load_rgb
from ...data.wsol import WSOLMetadata, default_mask_root, load_masks, read_wsol_metadata
from ...evaluate.attention_quality import attention_quality, baseline_scores
from ...evaluate.baselines import image_independent
from ...evaluate.scoremaps import RESIZE_LENGTH
from ...evaluate.split_baselines import object_prior
from ...models.attention import attention_maps
from ...utils import atomic_write_bytes
from .config import ProbeConfig
from .grid import ProbeGrid

ATTENTION_BATCH = 32  # test images per forward when scoring attention
FIGURE_BASELINES = ("centre", "box_prior")  # the baselines drawn beside the heads in attention.png
LEARNED_RULE = (
    "read a head's attention only where the backbone has learned the object (on the bench: mixed_rand top-1 "
    "of at least 60%, docs/bench.md); elsewhere its scores measure position, as the baselines do"
)


@dataclass
class ProbeAttention:
    """The heads' attention on the test images and its scores: ``scores`` (head -> scores), ``baselines``
    (name -> scores), ``prior`` (where ``box_prior`` came from), the scored ``image_ids`` and each head's
    ``maps`` ``(N, h, w)``; ``pictures`` and ``columns`` (name -> ``(rows, h, w)``: the heads, then
    :data:`FIGURE_BASELINES`) are the rows of ``attention.png``."""

    scores: dict[str, dict]
    baselines: dict[str, dict]
    prior: dict
    image_ids: list[str]
    maps: dict[str, np.ndarray]
    pictures: list[np.ndarray] = field(default_factory=list)
    columns: dict[str, np.ndarray] = field(default_factory=dict)


def find_metadata(config: ProbeConfig, split: str | None = None) -> Path | None:
    """A split's wsolevaluation metadata (the test split ``data.val_split`` by default): for the test split
    ``probe.metadata`` when set, for another split the folder beside it; else ``<root>/../metadata/<split>`` (a
    ``simpool bench export --format wsol`` folder whose ``dataset/`` is the root) or ``<root>/metadata/<split>``."""
    split = split or config.data.val_split
    root = Path(config.data.root)
    if config.probe.metadata:
        given = Path(config.probe.metadata)
        candidates = [given] if split == config.data.val_split else [given.parent / split]
    else:
        candidates = [root.parent / "metadata" / split, root / "metadata" / split]
    return next((c for c in candidates if (c / "localization.txt").is_file()), None)


def mask_size(metadata: WSOLMetadata, image_ids: list[str]) -> tuple[int, int] | None:
    """The masks' own size ``(H, W)`` when every image has one size, else ``None`` (read them at 224x224)."""
    sizes = {metadata.image_sizes.get(i) for i in image_ids}
    if len(sizes) != 1 or None in sizes:
        return None
    width, height = sizes.pop()
    return height, width


def object_masks(metadata: WSOLMetadata, folder: Path, root: Path, image_ids: list[str]) -> np.ndarray | None:
    """The masks ``(N, H, W)`` 0/1 of ``image_ids`` (ignore regions as background), at their own size when they
    share one (else 224x224); ``None`` unless every image has one."""
    if not image_ids or not all(i in metadata.masks for i in image_ids):
        return None
    size = mask_size(metadata, image_ids) or (RESIZE_LENGTH, RESIZE_LENGTH)
    return load_masks(metadata, default_mask_root(folder, root), image_ids, size=size, ignore=False)


def training_prior(
    config: ProbeConfig, test: WSOLMetadata, test_folder: Path, size: tuple[int, int]
) -> tuple[np.ndarray, dict]:
    """The training split's mean object ``(H, W)`` at ``size`` (:func:`object_prior`: its masks, else its boxes)
    and where it came from; the test split's own when the training split has no metadata."""
    root = Path(config.data.root)
    folder = find_metadata(config, config.data.train_split)
    split, metadata = (config.data.train_split, read_wsol_metadata(folder)) if folder else (config.data.val_split, test)
    folder = folder or test_folder
    mask_root = default_mask_root(folder, root) if metadata.masks else None
    prior = object_prior(metadata, mask_root, size)
    return prior, {"split": split, "metadata": str(folder), "from": "masks" if mask_root else "boxes"}


def head_maps(grid: ProbeGrid, best: dict[str, int], images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each head's attention ``(B, h, w)`` on ``images (B, 3, H, W)``, at its selected lr. ``linear``'s map is the
    backbone's CLS attention in its last block (uniform without a CLS token)."""
    tokens = grid.tokens(images)  # (B, T, C)
    h, w = grid.backbone.grid
    maps = {}
    for name, index in best.items():
        attention = grid.heads[index].attention(tokens)  # (B, N) or None
        if attention is None:
            if grid.backbone.num_prefix_tokens and hasattr(grid.backbone.model, "blocks"):
                attention = attention_maps(grid.backbone.model, images, source="cls").flatten(1)  # (B, N)
            else:
                attention = torch.ones(len(images), h * w, device=images.device)  # (B, N)
        maps[name] = attention.float().reshape(-1, h, w).cpu()  # (B, h, w)
    return maps


@torch.no_grad()
def collect_maps(
    config: ProbeConfig, grid: ProbeGrid, best: dict[str, int], image_ids: list[str], device: torch.device
) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """Each head's maps ``(N, h, w)`` on the images ``image_ids`` (resized whole to ``data.img_size``, no crop, as
    wsolevaluation scores them), and the first ``probe.figure_images`` of them as RGB pictures."""
    root, img, rows = Path(config.data.root), config.data.img_size, config.probe.figure_images
    transform = transforms.Compose(
        [transforms.Resize((img, img)), transforms.ToTensor(), transforms.Normalize(config.data.mean, config.data.std)]
    )
    grid.eval()
    maps: dict[str, list[torch.Tensor]] = {name: [] for name in best}
    pictures = []
    for start in range(0, len(image_ids), ATTENTION_BATCH):
        pil = [load_rgb(root / i) for i in image_ids[start : start + ATTENTION_BATCH]]
        images = torch.stack([transform(p) for p in pil]).to(device)  # (B, 3, img, img)
        for name, value in head_maps(grid, best, images).items():
            maps[name].append(value)
        if len(pictures) < rows:
            pictures += [np.asarray(p.convert("RGB").resize((img, img))) for p in pil]
    return {name: torch.cat(value).numpy() for name, value in maps.items()}, pictures[:rows]


def attention_scores(
    config: ProbeConfig, grid: ProbeGrid, best: dict[str, int], device: torch.device
) -> ProbeAttention | None:
    """Each head's (at its selected lr) attention scores and the baselines' on the test images with a box, and the
    rows of ``attention.png``; ``None`` when the test split has no box metadata."""
    folder = find_metadata(config)
    if folder is None:
        return None
    metadata, root = read_wsol_metadata(folder), Path(config.data.root)
    ids = [i for i in metadata.image_ids if i in metadata.boxes][: config.probe.attention_images or None]
    maps, pictures = collect_maps(config, grid, best, ids, device)
    masks = object_masks(metadata, folder, root, ids)
    boxes, sizes = [metadata.boxes[i] for i in ids], [metadata.image_sizes[i] for i in ids]
    scores = {name: attention_quality(value, boxes, sizes, masks) for name, value in maps.items()}
    size = masks.shape[-2:] if masks is not None else (RESIZE_LENGTH, RESIZE_LENGTH)
    prior, source = training_prior(config, metadata, folder, tuple(size))
    grid_hw, seed = tuple(grid.backbone.grid), config.train.seed
    baselines = baseline_scores(grid_hw, prior[None], boxes, sizes, masks, seed=seed, model_maps=maps)
    rows = len(pictures)
    drawn = image_independent(rows, grid_hw, prior[None], seed=seed)  # the baselines' maps: (rows, h, w) each
    columns = {**{name: value[:rows] for name, value in maps.items()}, **{k: drawn[k] for k in FIGURE_BASELINES}}
    return ProbeAttention(scores, baselines, source, ids, maps, pictures, columns if rows else {})


def save_attention(attention: ProbeAttention, path: str | Path) -> Path:
    """Each head's maps ``(N, h, w)`` float32 under its name, and ``image_ids``, as one ``.npz``, written
    atomically: what the attention scores were computed from."""
    buffer = io.BytesIO()
    np.savez(buffer, image_ids=np.asarray(attention.image_ids), **attention.maps)
    return atomic_write_bytes(path, buffer.getvalue())


__all__ = [
    "FIGURE_BASELINES",
    "LEARNED_RULE",
    "ProbeAttention",
    "attention_scores",
    "collect_maps",
    "find_metadata",
    "head_maps",
    "mask_size",
    "object_masks",
    "save_attention",
    "training_prior",
]
