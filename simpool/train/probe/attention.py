"""Each probing head's attention on the test images with boxes, scored beside the maps that ignore the image.

The test split's boxes and masks come from its wsolevaluation metadata (``simpool bench export --format wsol``
writes both: ``metadata/<split>/localization.txt`` and ``masks.txt``, the masks under ``masks/``). Each head's
map (at its selected lr) is scored by :func:`~simpool.evaluate.attention_quality.attention_quality`
(MaxBoxAccV2 and BoxAcc@50; PxAP and the mask mass with masks), and so are the image-independent baselines
(:func:`~simpool.evaluate.attention_quality.baseline_maps`): ``uniform``, ``centre``, ``box_prior`` (the mean
object of the training split, from its metadata's masks or boxes; of the test split itself when the training
split has no metadata) and ``mean_map/<head>``, each head's maps averaged over the test images and used for
every image. A head's attention says where the object is only where the backbone has learned the object
(:data:`LEARNED_RULE`); elsewhere its scores measure position, which the baselines measure too.

Under ``torchrun`` every process computes the maps of its contiguous block of the test images, the maps are
gathered on every process, and the scoring of the heads and baselines is shared out among the processes, its
results gathered: no process works alone while the others wait at a barrier (ImageNet's 50,000 boxed validation
images would outlast the process-group timeout on one).
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
from ...evaluate.attention_quality import attention_quality, baseline_maps
from ...evaluate.baselines import image_independent
from ...evaluate.scoremaps import RESIZE_LENGTH
from ...evaluate.split_baselines import object_prior
from ...models.attention import attention_maps
from ...utils import atomic_write_bytes
from ..distributed import DistInfo, all_gather_objects, all_gather_rows, run_together
from .config import ProbeConfig
from .data import block
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


def whole_image(config: ProbeConfig) -> transforms.Compose:
    """The test image resized whole to ``data.img_size`` (no crop, as wsolevaluation scores it), normalised."""
    img, data = config.data.img_size, config.data
    steps = [transforms.Resize((img, img)), transforms.ToTensor(), transforms.Normalize(data.mean, data.std)]
    return transforms.Compose(steps)


@torch.no_grad()
def collect_maps(
    config: ProbeConfig, grid: ProbeGrid, best: dict[str, int], image_ids: list[str], info: DistInfo
) -> dict[str, np.ndarray]:
    """Each head's maps ``(N, h, w)`` on the images ``image_ids`` (resized whole to ``data.img_size``): each process
    computes its block of the images, and every process gets all the maps (every process must call it)."""
    root, transform = Path(config.data.root), whole_image(config)
    grid.eval()
    mine = image_ids[block(len(image_ids), info)]
    h, w = grid.backbone.grid  # set by the grid's first forward (build_grid)
    maps: dict[str, list[torch.Tensor]] = {name: [torch.zeros(0, h, w)] for name in best}  # a block may be empty
    for start in range(0, len(mine), ATTENTION_BATCH):
        pil = [load_rgb(root / i) for i in mine[start : start + ATTENTION_BATCH]]
        images = torch.stack([transform(p) for p in pil]).to(info.device)  # (B, 3, img, img)
        for name, value in head_maps(grid, best, images).items():
            maps[name].append(value)
    gathered = {}
    for name, values in maps.items():
        rows = torch.cat(values).to(info.device)  # (n_rank, h, w)
        gathered[name] = all_gather_rows(rows).cpu().numpy()  # (N, h, w) in image order
    return gathered


def pictures_of(config: ProbeConfig, image_ids: list[str]) -> list[np.ndarray]:
    """The first ``probe.figure_images`` test images as RGB pictures at ``data.img_size`` (attention.png's rows)."""
    img, root = config.data.img_size, Path(config.data.root)
    return [np.asarray(load_rgb(root / i).resize((img, img))) for i in image_ids[: config.probe.figure_images]]


def my_scores(maps: dict[str, np.ndarray], info: DistInfo, score) -> dict[str, dict]:
    """``score(maps[name])`` for this process's share of the names (every ``world_size``-th from its rank)."""
    return {name: score(maps[name]) for name in list(maps)[info.rank :: info.world_size]}


def shared_scores(maps: dict[str, np.ndarray], info: DistInfo, score) -> dict[str, dict]:
    """``score(maps[name])`` for every name, the names shared out among the processes (:func:`my_scores`) and the
    results gathered on every process, in the order of ``maps``."""
    parts = all_gather_objects(my_scores(maps, info, score), info)
    merged = {name: value for part in parts for name, value in part.items()}
    return {name: merged[name] for name in maps}


def attention_scores(
    config: ProbeConfig, grid: ProbeGrid, best: dict[str, int], info: DistInfo
) -> ProbeAttention | None:
    """Each head's (at its selected setting) attention scores and the baselines' on the test images with a box,
    and the rows of ``attention.png``; ``None`` when the test split has no box metadata. Every process must call
    it: the maps and the scoring are shared out among them."""
    folder = find_metadata(config)
    if folder is None:
        return None
    metadata, root = read_wsol_metadata(folder), Path(config.data.root)
    ids = [i for i in metadata.image_ids if i in metadata.boxes][: config.probe.attention_images or None]
    maps = collect_maps(config, grid, best, ids, info)
    masks = object_masks(metadata, folder, root, ids)
    boxes, sizes = [metadata.boxes[i] for i in ids], [metadata.image_sizes[i] for i in ids]
    size = masks.shape[-2:] if masks is not None else (RESIZE_LENGTH, RESIZE_LENGTH)
    prior, source = training_prior(config, metadata, folder, tuple(size))
    grid_hw, seed = tuple(grid.backbone.grid), config.train.seed
    baselines = baseline_maps(len(ids), grid_hw, prior[None], seed, maps)  # what baseline_scores scores
    scores = shared_scores({**maps, **baselines}, info, lambda m: attention_quality(m, boxes, sizes, masks))
    pictures = run_together(lambda: pictures_of(config, ids) if info.is_main else [], info)  # all raise together
    rows = len(pictures)
    drawn = image_independent(rows, grid_hw, prior[None], seed=seed)  # the baselines' maps: (rows, h, w) each
    columns = {**{name: value[:rows] for name, value in maps.items()}, **{k: drawn[k] for k in FIGURE_BASELINES}}
    head_scores, baseline_scores = {name: scores[name] for name in maps}, {name: scores[name] for name in baselines}
    return ProbeAttention(head_scores, baseline_scores, source, ids, maps, pictures, columns if rows else {})


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
    "my_scores",
    "object_masks",
    "pictures_of",
    "save_attention",
    "shared_scores",
    "training_prior",
]
