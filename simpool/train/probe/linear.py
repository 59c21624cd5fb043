"""The linear probe on frozen features (DINO, Caron et al. 2021, ``eval_linear.py``; paper Tables 3, 4).

A linear classifier ``W f(x) + b`` on the frozen pooled feature ``f(x)`` (the model's pre-logits vector),
``W ~ N(0, 0.01^2)``, ``b = 0``; SGD with momentum 0.9 and no weight decay; ``lr = base_lr x batch_size / 256``;
a cosine schedule to 0 stepped per epoch; cross-entropy; the reported number is the best validation top-1 over
epochs, as DINO reports it. Several heads, one per base learning rate, train in the same pass over the features
(dinov2's grid of linear heads): the probe grid's own :func:`~.grid.linear_grid`, whose heads' gradients each
depend only on themselves, so the grid equals separate runs at a fraction of the cost.

:class:`LinearProbeRecipe` trains a grid and validates it after each epoch; :func:`linear_probe` runs the
protocol on an ImageFolder dataset, :func:`linear_probe_cached` on features extracted once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torchvision import transforms

from ...data.folders import image_folder
from ...evaluate.features import IMAGENET_MEAN, IMAGENET_STD, data_loader, eval_transform, extract_features, pre_logits
from ..distributed import DistInfo
from ..engine import single_process
from ..recipe import Loop, Parts, Recipe
from ..schedule import Schedule
from .grid import ProbeGrid, evaluate_grid, grid_step, linear_grid
from .optim import build_optimizer

VAL_BATCH = 1024  # validation features per forward


def train_transform(crop: int = 224) -> transforms.Compose:
    """DINO's linear-probe augmentation: ``RandomResizedCrop(224)``, horizontal flip, normalise."""
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(crop),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


class FrozenFeatures(nn.Module):
    """The pooled representation ``(B, D)`` of a frozen model (:func:`~simpool.evaluate.features.pre_logits`):
    always in eval mode, never a gradient."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenFeatures:
        super().train(mode)
        self.model.eval()
        return self

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return pre_logits(self.model, images)  # (B, D)


class ShuffledFeatures:
    """Cached ``features (N, D)`` and ``labels (N,)`` in batches, in a new seeded order at each pass."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int = 0):
        if len(features) != len(labels):
            raise ValueError(f"{len(features)} feature rows for {len(labels)} labels: give one label per row")
        self.features, self.labels, self.batch_size = features, labels, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self):
        order = torch.randperm(len(self.features), generator=self.generator)
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            yield self.features[index], self.labels[index]


class LinearProbeRecipe(Recipe):
    """Train every head of ``grid`` (one per base lr) on ``train`` and validate them after each epoch.

    Args:
        grid: a :func:`~.grid.linear_grid`: features of images through its backbone, or cached features.
        train: iterable of ``(inputs, labels)``, iterated once per epoch (a shuffling ``DataLoader`` of images,
            :class:`ShuffledFeatures`).
        val_features, val_labels: ``(N, D)``, ``(N,)``.
        epochs: the cosine schedule's length (DINO: 100).
        batch_size: the global batch size that scales the learning rates.
    """

    name = "linear"

    def __init__(
        self,
        grid: ProbeGrid,
        train: Iterable,
        val_features: torch.Tensor,
        val_labels: torch.Tensor,
        epochs: int,
        batch_size: int,
        progress: bool = True,
    ):
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        if len(val_features) != len(val_labels):
            raise ValueError(f"{len(val_features)} validation features for {len(val_labels)} labels")
        self.grid, self.train, self.epochs, self.batch_size = grid, train, epochs, batch_size
        self.val_features, self.val_labels = val_features, val_labels
        self.device = next(grid.heads.parameters()).device
        self.loop = Loop(progress=progress)
        self.history: list[torch.Tensor] = []  # (heads,) top-1 after each epoch

    def build(self, info: DistInfo) -> Parts:
        optimizer = build_optimizer(self.grid, "sgd", self.batch_size, momentum=0.9)
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.epochs, eta_min=0.0)
        return Parts(self.grid, optimizer, epochs=self.epochs, schedule=Schedule(cosine, on="epoch"))

    def batches(self, epoch: int, start_update: int):
        return ((inputs, labels, 0) for inputs, labels in self.train if len(labels))

    def step(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, weight: float):
        return grid_step(model, inputs, targets, self.device)

    def validation(self):
        """``(features, labels)`` batches of the validation set."""
        for start in range(0, len(self.val_features), VAL_BATCH):
            yield self.val_features[start : start + VAL_BATCH], self.val_labels[start : start + VAL_BATCH]

    def end_epoch(self, epoch: int, row: dict, model: nn.Module) -> None:
        self.history.append(evaluate_grid(self.grid, self.validation(), self.device)["top1"])

    def summary(self, row: dict) -> dict:
        """``{"heads": [{"lr", "best_top1", "best_epoch", "final_top1", "top1_per_epoch"}], "best": the head of
        largest best_top1}``."""
        table = torch.stack(self.history)  # (epochs, heads)
        results = []
        for i, (_, lr, *_) in enumerate(self.grid.entries):
            best_epoch = int(table[:, i].argmax())
            results.append(
                {
                    "lr": lr,
                    "best_top1": float(table[best_epoch, i]),
                    "best_epoch": best_epoch + 1,
                    "final_top1": float(table[-1, i]),
                    "top1_per_epoch": table[:, i].tolist(),
                }
            )
        return {"heads": results, "best": max(results, key=lambda r: r["best_top1"])}

    def fit(self) -> dict:
        """Train on the heads' device, no run folder; returns :meth:`summary`'s result."""
        return self.run(single_process(self.device))


def linear_probe_cached(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    val_features: torch.Tensor,
    val_labels: torch.Tensor,
    lrs: Sequence[float] = (0.001,),
    epochs: int = 100,
    batch_size: int = 256,
    num_classes: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """A grid of linear heads (one per base lr) trained in one pass over cached features, shuffled per epoch.

    No augmentation: every epoch sees the same features (faster than :func:`linear_probe` on augmented images,
    usually a little less accurate). See :meth:`LinearProbeRecipe.summary` for the result.
    """
    train = ShuffledFeatures(train_features, train_labels, batch_size, seed)
    num_classes = num_classes or int(max(train_labels.max(), val_labels.max())) + 1
    torch.manual_seed(seed)
    grid = linear_grid(train_features[0].numel(), num_classes, lrs).to(train_features.device)
    return LinearProbeRecipe(grid, train, val_features, val_labels, epochs, batch_size, progress).fit()


def linear_probe(
    model: nn.Module,
    data: str | os.PathLike,
    train_split: str = "train",
    val_split: str = "val",
    lrs: Sequence[float] = (0.001,),
    epochs: int = 100,
    cached: bool = False,
    resize: int = 256,
    img_size: int = 224,
    batch_size: int = 64,
    workers: int = 0,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """The linear probe of ``model``'s frozen features on ``<data>/<train_split>``, validated on ``<val_split>``.

    Training images pass DINO's augmentation (:func:`train_transform`) through the frozen model every epoch;
    with ``cached`` the training features are extracted once without augmentation (:func:`linear_probe_cached`).
    The model runs on the device of its parameters. Returns :meth:`LinearProbeRecipe.summary`'s result.
    """
    device = next(model.parameters()).device
    train_tf = eval_transform(resize, img_size) if cached else train_transform(img_size)
    train = image_folder(os.path.join(data, train_split), train_tf)
    val = image_folder(os.path.join(data, val_split), eval_transform(resize, img_size), train.classes)
    val_loader = data_loader(val, batch_size, workers, device)
    val_features, val_labels = extract_features(model, val_loader, device=device, progress=progress, desc="val")
    if cached:
        train_loader = data_loader(train, batch_size, workers, device)
        train_features, train_labels = extract_features(
            model, train_loader, device=device, progress=progress, desc="train"
        )
        return linear_probe_cached(
            train_features,
            train_labels,
            val_features,
            val_labels,
            lrs=lrs,
            epochs=epochs,
            batch_size=batch_size,
            num_classes=len(val.classes),
            seed=seed,
            progress=progress,
        )
    images = data_loader(train, batch_size, workers, device, shuffle=True, drop_last=len(train) > batch_size)
    grid = linear_grid(val_features.shape[1], len(val.classes), lrs, FrozenFeatures(model)).to(device)
    return LinearProbeRecipe(grid, images, val_features, val_labels, epochs, batch_size, progress).fit()


__all__ = [
    "FrozenFeatures",
    "LinearProbeRecipe",
    "ShuffledFeatures",
    "linear_probe",
    "linear_probe_cached",
    "train_transform",
]
