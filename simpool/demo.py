"""``simpool demo``: train a tiny ViT with SimPool on Fashion-MNIST, report accuracy, draw its attention.

A small real job for a laptop CPU: a 4-block ViT on 28x28 images (7x7 patches of 4 pixels), no CLS
token, SimPool (gamma 1.25) as its final pooling. It prints test accuracy and saves a PNG of the
attention maps of SimPool on test images.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .data.fashion_mnist import CLASSES, load_fashion_mnist
from .models import attention_maps, create_model, save_checkpoint
from .utils import default_device

TINY_VIT = dict(img_size=28, patch_size=4, in_chans=1, embed_dim=96, depth=4, num_heads=4, mlp_ratio=2.0)
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training-set pixel statistics


def tiny_vit(pool: str = "simpool", num_classes: int = 10, **pool_kwargs) -> torch.nn.Module:
    """The demo's ViT: 4 blocks of width 96 on 28x28 single-channel images."""
    return create_model("vit_tiny_patch16_224", pool=pool, pool_kwargs=pool_kwargs, num_classes=num_classes, **TINY_VIT)


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(images).float().div_(255.0).sub_(MEAN).div_(STD))[:, None]  # (N, 1, 28, 28)


def train_demo(
    epochs: float = 2.0,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    fashion_mnist_dir: str | None = None,
    device: torch.device | None = None,
    progress: bool = True,
) -> dict:
    """Train the tiny SimPool ViT; returns ``{"model", "test_accuracy", "seconds", "steps"}``."""
    device = device or default_device()
    torch.manual_seed(seed)
    train_x, train_y = load_fashion_mnist("train", fashion_mnist_dir)
    test_x, test_y = load_fashion_mnist("test", fashion_mnist_dir)
    x, y = _to_tensor(train_x), torch.from_numpy(train_y)
    model = tiny_vit().to(device)
    steps = max(1, int(epochs * len(x) / batch_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    generator = torch.Generator().manual_seed(seed)
    order = torch.cat([torch.randperm(len(x), generator=generator) for _ in range(math.ceil(epochs) + 1)])
    start = time.perf_counter()
    model.train()
    bar = tqdm(range(steps), desc="train", disable=not progress, unit="step")
    for step in bar:
        index = order[step * batch_size : (step + 1) * batch_size]
        images = x[index].to(device)
        images = torch.where(torch.rand(len(index), 1, 1, 1) < 0.5, images, images.flip(-1))  # horizontal flip
        loss = F.cross_entropy(model(images), y[index].to(device), label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    seconds = time.perf_counter() - start
    accuracy = evaluate_accuracy(model, _to_tensor(test_x), torch.from_numpy(test_y), device)
    return {"model": model, "test_accuracy": accuracy, "seconds": seconds, "steps": steps}


@torch.no_grad()
def evaluate_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device, batch_size: int = 512) -> float:
    model.eval()
    correct = sum(
        (model(x[i : i + batch_size].to(device)).argmax(1).cpu() == y[i : i + batch_size]).sum().item()
        for i in range(0, len(x), batch_size)
    )
    return correct / len(x)


def save_attention_figure(model, images: np.ndarray, labels: np.ndarray, path: str | Path) -> Path:
    """A two-row figure per image: the test image, and SimPool's attention over it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .visualize import overlay

    model.eval()
    device = next(model.parameters()).device
    maps = attention_maps(model, _to_tensor(images).to(device), source="pool").cpu()  # (B, 7, 7)
    with torch.no_grad():
        predicted = model(_to_tensor(images).to(device)).argmax(1).cpu()
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.6))
    for i in range(n):
        axes[0, i].imshow(images[i], cmap="gray")
        axes[0, i].set_title(f"{CLASSES[labels[i]]}\npred: {CLASSES[predicted[i]]}", fontsize=7)
        axes[1, i].imshow(overlay(images[i], maps[i], alpha=0.6))
        for ax in axes[:, i]:
            ax.axis("off")
    axes[1, 0].set_title("SimPool attention", fontsize=7, loc="left")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


EXAMPLE = "example: simpool demo --epochs 2 --out outputs/demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=float, default=2.0, help="passes over the 60k training images")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="outputs/demo", help="folder for the figure and the weights")
    parser.add_argument("--fashion-mnist-dir", default=None, help="folder of the Fashion-MNIST IDX files")
    parser.add_argument("--num-images", type=int, default=10, help="test images in the figure")


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    result = train_demo(args.epochs, args.batch_size, args.lr, args.seed, args.fashion_mnist_dir)
    out = Path(args.out)
    test_x, test_y = load_fashion_mnist("test", args.fashion_mnist_dir)
    picks = np.random.default_rng(args.seed).choice(len(test_x), args.num_images, replace=False)
    figure = save_attention_figure(result["model"], test_x[picks], test_y[picks], out / "attention.png")
    weights = save_checkpoint(result["model"], out / "tiny_vit_simpool.safetensors")
    print(f"test accuracy: {100 * result['test_accuracy']:.2f}% ({result['steps']} steps in {result['seconds']:.0f} s)")
    print(f"attention maps: {figure}")
    print(f"weights: {weights}")
    return 0
