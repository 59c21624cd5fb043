"""One training step: accumulation identity, and the throughput benchmark's two steps."""

from __future__ import annotations

import torch
from torch import nn

from simpool.train.step import forward_backward
from simpool.train.throughput import measure


def test_two_accumulated_halves_give_the_full_batch_gradient():
    # mean loss over 8 = (mean over the first 4 + mean over the last 4) / 2: the same gradient
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    images, targets = torch.randn(8, 3, 2, 2), torch.randint(0, 3, (8,))
    criterion = nn.CrossEntropyLoss()
    forward_backward(model, images, targets, criterion)
    full = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for half in (slice(0, 4), slice(4, 8)):
        loss, count = forward_backward(model, images[half], targets[half], criterion, accum_steps=2)
        assert count == 4 and loss.requires_grad is False
    for expected, parameter in zip(full, model.parameters(), strict=True):
        torch.testing.assert_close(parameter.grad, expected)


def test_throughput_measures_both_steps():
    result = measure(
        "vit_tiny_patch16_224",
        batch=2,
        img_size=32,
        steps=1,
        rounds=1,
        device=torch.device("cpu"),
        patch_size=8,
        embed_dim=32,
        depth=1,
        num_heads=2,
    )
    assert result["ours"] > 0 and result["bare"] > 0
    assert result["ratio"] == result["ours"] / result["bare"]
