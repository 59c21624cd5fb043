"""The SimPool bench: Fashion-MNIST objects on crops of real photos, with exact masks and boxes.

Each image is one Fashion-MNIST object (its mask is its own pixels above ``MASK_THRESHOLD`` after
resizing), tinted, scaled and placed at a random position on a random crop of one of the photos
and textures bundled in scikit-image's wheel (``BACKGROUNDS``; only those, since its other images
download at run time). Class, box and mask are therefore known exactly.

Variants after ImageNet-9 (Xiao et al., "Noise or Signal: The Role of Image Backgrounds in Object
Recognition", ICLR 2021) share every random choice, so image ``i`` of ``only_fg`` is the object of
image ``i`` of ``original``:

- ``original``: the object on a background that, with probability ``bg_correlation``, comes from its
  class's own pool of backgrounds (``BACKGROUNDS[k]`` and ``BACKGROUNDS[k + 10]`` for class ``k``),
  else from all of them, as real photos correlate background and class;
- ``only_fg``: the object on black; ``no_fg``: ``original`` with the object's mask blacked out;
- ``only_bg_b``: the background with the object's box blacked out; ``only_bg_t``: the same box filled
  by tiling the largest background band beside it;
- ``mixed_same`` / ``mixed_rand`` / ``mixed_next``: the object on a background from its own class's
  pool / from any class / from class ``(k + 1) mod 10``'s pool.

Boxes are ``(x0, y0, x1, y1)`` in pixels with ``x1``/``y1`` exclusive: ``x0`` is the mask's first
column and ``x1 - 1`` its last. Splits: ``train`` and ``val`` from Fashion-MNIST's training split
(the last ``VAL_SIZE`` images are ``val``), ``test`` from its test split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import torch
from tqdm import tqdm

from .fashion_mnist import CLASSES, load_fashion_mnist
from .in9 import VARIATIONS

VARIANTS = VARIATIONS  # the bench renders the eight variations of IN-9 (Xiao et al.)
SPLITS = ("train", "val", "test")
VAL_SIZE = 5000
MASK_THRESHOLD = 32  # object pixels: resized Fashion-MNIST intensity above this (of 255)
NUM_CLASSES = len(CLASSES)

# skimage.data loaders that work offline, ordered so that class k's pool is (k, k + 10).
BACKGROUNDS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "motorcycle_left",
    "brick",
    "grass",
    "camera",
    "coins",
    "moon",
    "page",
    "text",
    "clock",
    "cell",
    "motorcycle_right",
    "gravel",
    "microaneurysms",
)


@dataclass(frozen=True)
class BenchConfig:
    """How the bench draws its images; every field is part of an image's identity.

    Attributes:
        image_size: side of the square images in pixels (64 for the CPU demo; 224 works).
        bg_correlation: probability that an ``original`` image's background comes from its class's pool.
        min_scale: smallest object side as a fraction of ``image_size``.
        max_scale: largest object side as a fraction of ``image_size``.
        min_tint: smallest value of each RGB channel of the object's tint (the tint is uniform in
            ``[min_tint, 1]^3``; the object's pixel is its intensity times the tint).
        seed: seed of every random choice.
        overhang: how far the object's square may cross the image border, as a fraction of its side (0: it
            stays inside; the image then shows, and the box and mask cover, the part inside). Objects placed
            inside the image cover its middle more often than its edges; crossing the border evens that out.
    """

    image_size: int = 64
    bg_correlation: float = 0.5
    min_scale: float = 0.4
    max_scale: float = 0.65
    min_tint: float = 0.3
    seed: int = 0
    overhang: float = 0.25

    def __post_init__(self):
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16, got {self.image_size}")
        if not 0.0 <= self.bg_correlation <= 1.0:
            raise ValueError(f"bg_correlation must be in [0, 1], got {self.bg_correlation}")
        if not 0.0 < self.min_scale <= self.max_scale <= 1.0:
            raise ValueError(f"need 0 < min_scale <= max_scale <= 1, got {self.min_scale}, {self.max_scale}")
        if not 0.0 <= self.min_tint <= 1.0:
            raise ValueError(f"min_tint must be in [0, 1], got {self.min_tint}")
        if not 0.0 <= self.overhang <= 0.25:
            raise ValueError(f"overhang must be in [0, 0.25] (a fraction of the object's side), got {self.overhang}")


def _load_background(name: str) -> np.ndarray:
    import skimage.data

    if name.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        image = left if name == "motorcycle_left" else right
    else:
        image = getattr(skimage.data, name)()
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = (255 * (image.astype(np.float64) / max(float(image.max()), 1e-12))).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)  # (H, W) -> (H, W, 3)
    return np.ascontiguousarray(image[..., :3])


@lru_cache(maxsize=4)
def background_bank(image_size: int) -> tuple[np.ndarray, ...]:
    """The ``BACKGROUNDS`` as uint8 ``(H, W, 3)`` arrays resized so that their short side is ``2 * image_size``.

    Crops of ``image_size`` then cover at most half of a photo's short side.
    """
    bank = []
    for name in BACKGROUNDS:
        image = _load_background(name)
        h, w = image.shape[:2]
        factor = 2 * image_size / min(h, w)
        size = (max(2 * image_size, round(w * factor)), max(2 * image_size, round(h * factor)))  # cv2: (W, H)
        bank.append(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    return tuple(bank)


@lru_cache(maxsize=4)
def _objects(split: str, root: str | None) -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_fashion_mnist("test" if split == "test" else "train", root)
    if split == "train":
        return images[:-VAL_SIZE], labels[:-VAL_SIZE]
    if split == "val":
        return images[-VAL_SIZE:], labels[-VAL_SIZE:]
    return images, labels


def draw_parameters(labels: np.ndarray, config: BenchConfig, split: str) -> dict[str, np.ndarray]:
    """Every random choice of a split, one row per image, drawn at once from ``(seed, split)``.

    Drawing them for the whole split makes image ``i`` the same whatever subset is rendered, and the
    same across variants.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = np.random.default_rng([config.seed, SPLITS.index(split)])
    n, size, banks = len(labels), config.image_size, len(BACKGROUNDS)
    per_class = banks // NUM_CLASSES
    side = np.round(rng.uniform(config.min_scale, config.max_scale, n) * size).astype(np.int64).clip(4, size)
    own_pool = labels + NUM_CLASSES * rng.integers(0, per_class, n)  # a background of the class's pool
    correlated = rng.random(n) < config.bg_correlation
    return {
        "side": side,
        "x": _corner(rng.random(n), side, size, config.overhang),  # top-left corner of the object's square
        "y": _corner(rng.random(n), side, size, config.overhang),
        "tint": rng.uniform(config.min_tint, 1.0, (n, 3)).astype(np.float32),
        "flip": rng.random(n) < 0.5,  # the object, mirrored
        "bg_original": np.where(correlated, own_pool, rng.integers(0, banks, n)),
        "bg_same": labels + NUM_CLASSES * rng.integers(0, per_class, n),
        "bg_rand": rng.integers(0, banks, n),
        "bg_next": (labels + 1) % NUM_CLASSES + NUM_CLASSES * rng.integers(0, per_class, n),
        "crop": rng.random((n, 2)),  # the crop's top-left corner, as fractions of the free range
        "crop_flip": rng.random(n) < 0.5,
        "crop_mixed": rng.random((n, 2)),  # a second crop, for the mixed_* variants
    }


def _corner(fraction: np.ndarray, side: np.ndarray, size: int, overhang: float) -> np.ndarray:
    """The square's top-left coordinate, uniform over the positions that keep at most ``overhang x side`` of it
    past either border (``overhang`` 0: inside the image)."""
    reach = np.round(overhang * side).astype(np.int64)  # (n,)
    return (fraction * (size - side + 1 + 2 * reach)).astype(np.int64) - reach


_BACKGROUND_OF = {"mixed_same": "bg_same", "mixed_rand": "bg_rand", "mixed_next": "bg_next"}


def _crop(bank: tuple[np.ndarray, ...], index: int, corner: np.ndarray, flip: bool, size: int) -> np.ndarray:
    image = bank[index]
    h, w = image.shape[:2]
    y, x = int(corner[0] * (h - size + 1)), int(corner[1] * (w - size + 1))
    crop = image[y : y + size, x : x + size]  # (S, S, 3)
    return crop[:, ::-1] if flip else crop


def _tile_box(background: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """``background`` with ``box`` filled by tiling the largest background band beside it (IN-9's ``only_bg_t``)."""
    x0, y0, x1, y1 = box
    S = background.shape[0]
    out = background.copy()
    bands = {
        "left": x0 * (y1 - y0),
        "right": (S - x1) * (y1 - y0),
        "top": y0 * (x1 - x0),
        "bottom": (S - y1) * (x1 - x0),
    }
    band = max(bands, key=bands.get)
    if bands[band] == 0:  # the box covers the image: nothing to tile from
        out[y0:y1, x0:x1] = 0
        return out
    source = {
        "left": background[y0:y1, :x0],
        "right": background[y0:y1, x1:],
        "top": background[:y0, x0:x1],
        "bottom": background[y1:, x0:x1],
    }[band]  # (h, w', 3) or (h', w, 3)
    reps = (-(-(y1 - y0) // source.shape[0]), -(-(x1 - x0) // source.shape[1]), 1)
    out[y0:y1, x0:x1] = np.tile(source, reps)[: y1 - y0, : x1 - x0]
    return out


def _inside(intensity: np.ndarray, x: int, y: int, size: int) -> tuple[int, int, np.ndarray]:
    """The object's pixels inside the image: ``(x, y, crop)``; when none of its pixels would be, the square is
    moved inside (a fallback for squares whose object lies in the part past the border)."""
    side = intensity.shape[0]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + side, size), min(y + side, size)
    crop = intensity[y0 - y : y1 - y, x0 - x : x1 - x]  # (h, w)
    if (crop > MASK_THRESHOLD).any():
        return x0, y0, crop
    return min(max(x, 0), size - side), min(max(y, 0), size - side), intensity


def render(
    obj: np.ndarray, params: dict[str, np.ndarray], i: int, variant: str, config: BenchConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image ``i`` of a variant: ``(image (S, S, 3) uint8, mask (S, S) bool, box (4,) int64)``.

    Args:
        obj: the ``(28, 28)`` uint8 Fashion-MNIST object of image ``i``.
        params: ``draw_parameters`` of its split.
        i: the image's row in ``params``.
        variant: one of ``VARIANTS``.
        config: the bench configuration the parameters were drawn with.
    """
    S = config.image_size
    side, x, y = int(params["side"][i]), int(params["x"][i]), int(params["y"][i])
    intensity = cv2.resize(obj, (side, side), interpolation=cv2.INTER_LINEAR)  # (side, side) uint8
    if params["flip"][i]:
        intensity = intensity[:, ::-1]
    x, y, intensity = _inside(intensity, x, y, S)  # the part of the square inside the image
    local = intensity > MASK_THRESHOLD  # (h, w)
    h, w = local.shape
    mask = np.zeros((S, S), dtype=bool)
    mask[y : y + h, x : x + w] = local
    rows, cols = np.flatnonzero(local.any(1)), np.flatnonzero(local.any(0))
    box = np.array([x + cols[0], y + rows[0], x + cols[-1] + 1, y + rows[-1] + 1], dtype=np.int64)
    bank = background_bank(S)
    if variant == "only_fg":
        background = np.zeros((S, S, 3), dtype=np.uint8)
    elif variant in _BACKGROUND_OF:
        bg = int(params[_BACKGROUND_OF[variant]][i])
        background = _crop(bank, bg, params["crop_mixed"][i], bool(params["crop_flip"][i]), S)
    elif variant in VARIANTS:
        background = _crop(bank, int(params["bg_original"][i]), params["crop"][i], bool(params["crop_flip"][i]), S)
    else:
        raise ValueError(f"unknown bench variant {variant!r}; valid variants: {', '.join(VARIANTS)}")
    if variant == "only_bg_b":
        image = background.copy()
        image[box[1] : box[3], box[0] : box[2]] = 0
        return image, mask, box
    if variant == "only_bg_t":
        return _tile_box(background, tuple(int(v) for v in box)), mask, box
    image = np.array(background)  # a writable copy: (S, S, 3)
    window = image[y : y + h, x : x + w]  # (h, w, 3), a view
    if variant == "no_fg":
        window[local] = 0
    else:
        color = (intensity[local].astype(np.float32)[:, None] * params["tint"][i]).astype(np.uint8)  # (P, 3)
        window[local] = color
    return image, mask, box


class SimPoolBench(torch.utils.data.Dataset):
    """The bench as a PyTorch dataset of ``(image, label, box, mask)``.

    ``image`` is ``(3, S, S)`` float in [0, 1] (or what ``transform`` makes of it), ``label`` an int,
    ``box`` ``(4,)`` float ``(x0, y0, x1, y1)`` with exclusive ``x1, y1``, ``mask`` ``(S, S)`` bool.

    Args:
        split: ``train``, ``val`` or ``test``.
        variant: one of ``VARIANTS``.
        config: a ``BenchConfig`` (image size, background correlation, scales, seed).
        num_images: keep the first ``num_images`` of the split (the same images whatever this number).
        fashion_mnist_dir: folder of the Fashion-MNIST IDX files (default: Debian's, or ``$SIMPOOL_FASHION_MNIST``).
        transform: applied to the image tensor.
    """

    def __init__(
        self,
        split: str = "train",
        variant: str = "original",
        config: BenchConfig | None = None,
        num_images: int | None = None,
        fashion_mnist_dir: str | os.PathLike | None = None,
        transform=None,
    ):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if variant not in VARIANTS:
            raise ValueError(f"unknown bench variant {variant!r}; valid variants: {', '.join(VARIANTS)}")
        self.split, self.variant, self.config, self.transform = split, variant, config or BenchConfig(), transform
        self.objects, labels = _objects(split, None if fashion_mnist_dir is None else str(fashion_mnist_dir))
        self.params = draw_parameters(labels, self.config, split)
        total = len(labels)
        if num_images is not None and not 0 < num_images <= total:
            raise ValueError(f"num_images must be in [1, {total}] for the {split} split, got {num_images}")
        self.labels = labels[: num_images or total]
        self.classes = CLASSES

    def __len__(self) -> int:
        return len(self.labels)

    def render(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image ``i`` as uint8 ``(S, S, 3)``, its mask ``(S, S)`` and box ``(4,)``."""
        if not 0 <= i < len(self):
            raise IndexError(f"image {i} out of range for {len(self)} images")
        return render(self.objects[i], self.params, i, self.variant, self.config)

    def __getitem__(self, i: int):
        image, mask, box = self.render(i)
        tensor = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)  # (3, S, S)
        if self.transform is not None:
            tensor = self.transform(tensor)
        return tensor, int(self.labels[i]), torch.from_numpy(box).float(), torch.from_numpy(mask)

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """A fast path for training: uint8 images ``(B, 3, S, S)``, labels, boxes ``(B, 4)``, masks ``(B, S, S)``."""
        rendered = [self.render(int(i)) for i in indices]
        images = torch.from_numpy(np.stack([r[0] for r in rendered])).permute(0, 3, 1, 2)  # (B, 3, S, S)
        boxes = torch.from_numpy(np.stack([r[2] for r in rendered]))  # (B, 4)
        masks = torch.from_numpy(np.stack([r[1] for r in rendered]))  # (B, S, S)
        return images, torch.from_numpy(self.labels[np.asarray(indices)]), boxes, masks

    def rendered(self, progress: bool = False, chunk: int = 512) -> RenderedBench:
        """Every image of the dataset rendered once, held in memory (uint8: ``S * S * 4`` bytes per image with
        its mask); worth it when each image is drawn more than once (several epochs, repeated evaluations)."""
        parts = [
            self.batch(np.arange(i, min(i + chunk, len(self))))
            for i in tqdm(range(0, len(self), chunk), desc=f"render {self.split}/{self.variant}", disable=not progress)
        ]
        return RenderedBench(*(torch.cat(part) for part in zip(*parts, strict=True)))


class RenderedBench:
    """Bench images rendered once: the same ``batch`` and ``len`` as ``SimPoolBench``, from memory.

    Args:
        images: uint8 ``(N, 3, S, S)``; labels: ``(N,)``; boxes: ``(N, 4)``; masks: bool ``(N, S, S)``.
    """

    def __init__(self, images, labels, boxes, masks):
        if not len(images) == len(labels) == len(boxes) == len(masks):
            raise ValueError(
                f"rendered bench parts differ in length: {[len(images), len(labels), len(boxes), len(masks)]}"
            )
        self.images, self.labels, self.boxes, self.masks = images, labels, boxes, masks

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """uint8 images ``(B, 3, S, S)``, labels, boxes ``(B, 4)``, masks ``(B, S, S)``, as ``SimPoolBench.batch``."""
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return self.images[index], self.labels[index], self.boxes[index], self.masks[index]


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """Bench images, uint8 ``(B, 3, H, W)``, to floats centred on 0: ``(x / 255 - 0.5) / 0.25``."""
    return images.float().div(255.0).sub_(0.5).div_(0.25)
