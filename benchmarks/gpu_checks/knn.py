"""``knn``: DINO's weighted k-NN (k=20) of ImageNet-sized random features: 1.28M x 384 training features against
50,000 queries, on the device (scaled down under ``--smoke``)."""

from __future__ import annotations

import torch

from simpool.evaluate.knn import knn_classify

from .common import IMAGENET_TRAIN, sync, timed


def check_knn(smoke: bool, device: torch.device) -> dict:
    train_n, test_n, dim = (2000, 200, 384) if smoke else (IMAGENET_TRAIN, 50_000, 384)
    generator = torch.Generator(device=device).manual_seed(0)
    train = torch.randn(train_n, dim, device=device, generator=generator, dtype=torch.float16)  # (N, D), as extracted
    test = torch.randn(test_n, dim, device=device, generator=generator, dtype=torch.float16)  # (M, D)
    train_labels = torch.randint(0, 1000, (train_n,), device=device, generator=generator)  # (N,)
    test_labels = torch.randint(0, 1000, (test_n,), device=device, generator=generator)  # (M,)
    sync(device)
    seconds = timed(lambda: knn_classify(train, train_labels, test, test_labels, k=20), 1, device, warmup=0)
    full = seconds * (IMAGENET_TRAIN / train_n) * (50_000 / test_n)  # the cost grows as train x test
    return {
        "train": train_n,
        "test": test_n,
        "dim": dim,
        "seconds": seconds,
        "summary": f"k-NN of {test_n} queries over {train_n} x {dim} features: {seconds:.1f} s",
        "for_8_gpus": f"k-NN of ImageNet's val over its train features: about {full:.0f} s on one GPU",
    }
