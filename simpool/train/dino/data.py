"""DINO's multi-crop augmentation: 2 global crops and N local crops of every image.

DINO: Caron et al., ICCV 2021 (``main_dino.py::DataAugmentationDINO``, Apache-2.0), which follows
BYOL's augmentations. Crop scales per architecture come from the SimPool paper, Appendix C.2:
ViT-S global [0.25, 1] / local [0.05, 0.25]; ResNet-50 and ConvNeXt-S global [0.14, 1] / local [0.05, 0.14].
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from PIL import Image, ImageFilter
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torchvision import transforms


class RandomGaussianBlur:
    """PIL Gaussian blur of radius uniform in ``[radius_min, radius_max]``, applied with probability ``p`` (DINO)."""

    def __init__(self, p: float = 0.5, radius_min: float = 0.1, radius_max: float = 2.0):
        self.p, self.radius_min, self.radius_max = p, radius_min, radius_max

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() > self.p:
            return image
        return image.filter(ImageFilter.GaussianBlur(radius=random.uniform(self.radius_min, self.radius_max)))


class MultiCropTransform:
    """A PIL image -> ``[global_1, global_2, local_1, ..., local_N]`` tensors ``(C, S, S)``.

    Every crop is a ``RandomResizedCrop`` (bicubic), a horizontal flip, colour jitter (0.4, 0.4, 0.2, 0.1
    with p = 0.8) and grayscale (p = 0.2); then the first global crop is always blurred, the second
    blurred with p = 0.1 and solarised with p = 0.2, and each local crop blurred with p = 0.5.

    Args:
        global_crops_scale: area range of the global crops (DINO default ``(0.4, 1.0)``).
        local_crops_scale: area range of the local crops (DINO default ``(0.05, 0.4)``).
        local_crops_number: ``N`` (6 in the SimPool paper; 0 disables local crops).
        global_size: side of the global crops (224).
        local_size: side of the local crops (96).
        mean: normalisation mean (ImageNet's).
        std: normalisation standard deviation (ImageNet's).
    """

    def __init__(
        self,
        global_crops_scale: Sequence[float] = (0.4, 1.0),
        local_crops_scale: Sequence[float] = (0.05, 0.4),
        local_crops_number: int = 6,
        global_size: int = 224,
        local_size: int = 96,
        mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
        std: Sequence[float] = IMAGENET_DEFAULT_STD,
    ):
        for name, scale in (("global_crops_scale", global_crops_scale), ("local_crops_scale", local_crops_scale)):
            if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
                raise ValueError(f"{name} must be (min, max) with 0 < min <= max <= 1, got {tuple(scale)}")
        if local_crops_number < 0:
            raise ValueError(f"local_crops_number must be >= 0, got {local_crops_number}")
        self.local_crops_number = local_crops_number
        bicubic = transforms.InterpolationMode.BICUBIC
        flip_and_color_jitter = transforms.Compose(
            [
                transforms.RandomHorizontalFlip(p=0.5),
                transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
                transforms.RandomGrayscale(p=0.2),
            ]
        )
        normalize = transforms.Compose([transforms.ToTensor(), transforms.Normalize(tuple(mean), tuple(std))])
        global_crop = transforms.RandomResizedCrop(global_size, scale=tuple(global_crops_scale), interpolation=bicubic)
        self.global_1 = transforms.Compose([global_crop, flip_and_color_jitter, RandomGaussianBlur(1.0), normalize])
        self.global_2 = transforms.Compose(
            [
                global_crop,
                flip_and_color_jitter,
                RandomGaussianBlur(0.1),
                transforms.RandomSolarize(threshold=128, p=0.2),
                normalize,
            ]
        )
        self.local = transforms.Compose(
            [
                transforms.RandomResizedCrop(local_size, scale=tuple(local_crops_scale), interpolation=bicubic),
                flip_and_color_jitter,
                RandomGaussianBlur(0.5),
                normalize,
            ]
        )

    @property
    def num_crops(self) -> int:
        """Views per image: 2 global + the local ones."""
        return 2 + self.local_crops_number

    def __call__(self, image: Image.Image | tuple[Image.Image, Image.Image]) -> list[torch.Tensor]:
        """The crops of one image, or of a pair of renderings of one image (:class:`~simpool.data.paired.PairedViews`):
        the first global crop and the even local crops from the first, the second global crop and the odd local crops
        from the second. A pair of one image twice gives exactly the crops of that image."""
        first, second = image if isinstance(image, tuple) else (image, image)
        first, second = first.convert("RGB"), second.convert("RGB")
        crops = [self.global_1(first), self.global_2(second)]
        crops += [self.local(second if i % 2 else first) for i in range(self.local_crops_number)]
        return crops


def collate_crops(batch: list) -> tuple[list[torch.Tensor], torch.Tensor, int]:
    """Samples ``(crops, target)`` (``None``: unreadable) -> ``(V tensors (B, C, S_v, S_v), (B,), skipped)``."""
    kept = [sample for sample in batch if sample is not None]
    skipped = len(batch) - len(kept)
    if not kept:
        return [], torch.empty(0, dtype=torch.long), skipped
    num_crops = len(kept[0][0])
    crops = [torch.stack([crops[v] for crops, _ in kept]) for v in range(num_crops)]  # V x (B, C, S, S)
    targets = torch.tensor([target for _, target in kept], dtype=torch.long)  # (B,)
    return crops, targets, skipped
