"""One optimizer over every head of a grid: a param group per head x lr, the lr scaled by batch / 256."""

from __future__ import annotations

import pytest

from simpool.train.probe.grid import build_grid, linear_grid
from simpool.train.probe.optim import build_optimizer

from .conftest import tiny_backbone


def test_lars_scales_the_base_lr_and_adapts_matrices_only(tiny_vit):
    grid = build_grid(tiny_backbone(tiny_vit), ["linear", "simpool"], [0.1, 0.2], num_classes=3, img_size=32)
    optimizer = build_optimizer(grid, "lars", batch_size=512)
    assert type(optimizer).__name__ == "Lars" and len(optimizer.param_groups) == 8  # (matrices, vectors) x 4
    assert [g["lr"] for g in optimizer.param_groups[:4]] == pytest.approx([0.2, 0.2, 0.4, 0.4])  # x 512 / 256
    assert all(p.ndim > 1 for g in optimizer.param_groups[::2] for p in g["params"])
    assert [g["always_adapt"] for g in optimizer.param_groups[:2]] == [True, False]
    with pytest.raises(ValueError, match="valid: adamw, lars, sgd"):
        build_optimizer(grid, "adam")


def test_adamw_and_sgd_have_one_group_per_head():
    grid = linear_grid(4, 3, [0.001, 0.01, 0.1])
    grid.entries = [entry._replace(weight_decay=wd) for entry, wd in zip(grid.entries, [0.0, 0.05, 0.1], strict=True)]
    adamw = build_optimizer(grid, "adamw", batch_size=128)
    assert [g["lr"] for g in adamw.param_groups] == pytest.approx([0.0005, 0.005, 0.05])  # x 128 / 256
    assert [g["weight_decay"] for g in adamw.param_groups] == [0.0, 0.05, 0.1]  # each entry's own
    sgd = build_optimizer(grid, "sgd", batch_size=512, momentum=0.9)
    assert type(sgd).__name__ == "SGD" and [g["momentum"] for g in sgd.param_groups] == [0.9] * 3
    assert [[id(p) for p in g["params"]] for g in sgd.param_groups] == [
        [id(p) for p in head.parameters()] for head in grid.heads
    ]
