"""Cosine schedules, the EMA teacher update, parameter groups, clipping and the frozen last layer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from timm.optim import Lars
from torch import nn

from simpool.train.dino.head import DINOHead
from simpool.train.dino.optim import (
    apply_schedules,
    build_optimizer,
    cancel_last_layer_gradients,
    cosine_schedule,
    param_groups,
    update_teacher,
)
from simpool.train.engine import clip_per_tensor


def test_cosine_schedule_warmup_then_cosine_by_hand():
    # 2 epochs x 2 updates, 1 warm-up epoch: linspace(0, 1, 2) = [0, 1], then T = 2 cosine steps
    # t = 0: 1.0; t = 1: 0 + (1 - 0) (1 + cos(pi / 2)) / 2 = 0.5.
    np.testing.assert_allclose(cosine_schedule(1.0, 0.0, 2, 2, warmup_epochs=1), [0.0, 1.0, 1.0, 0.5])


def test_teacher_momentum_schedule_goes_from_0996_towards_1():
    schedule = cosine_schedule(0.996, 1.0, epochs=100, updates_per_epoch=10)
    assert len(schedule) == 1000
    assert schedule[0] == pytest.approx(0.996)
    # t = 500 of 1000: halfway on the cosine, (0.996 + 1) / 2
    assert schedule[500] == pytest.approx(0.998)
    assert np.all(np.diff(schedule) > 0) and schedule[-1] < 1.0
    assert schedule[-1] == pytest.approx(1 - 0.002 * (1 + math.cos(math.pi * 999 / 1000)))


def test_cosine_schedule_rejects_bad_lengths():
    with pytest.raises(ValueError, match="warmup_epochs"):
        cosine_schedule(1.0, 0.0, epochs=2, updates_per_epoch=3, warmup_epochs=3)
    with pytest.raises(ValueError, match="epochs"):
        cosine_schedule(1.0, 0.0, epochs=0, updates_per_epoch=3)


def test_ema_update_by_hand():
    student, teacher = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        student.weight.copy_(torch.tensor([[1.0, 2.0]]))
        student.bias.fill_(3.0)
        teacher.weight.zero_()
        teacher.bias.fill_(1.0)
    update_teacher(student, teacher, momentum=0.75)
    # 0.75 * teacher + 0.25 * student
    torch.testing.assert_close(teacher.weight, torch.tensor([[0.25, 0.5]]))
    torch.testing.assert_close(teacher.bias, torch.tensor([1.5]))
    update_teacher(student, teacher, momentum=1.0)  # momentum 1: frozen teacher
    torch.testing.assert_close(teacher.bias, torch.tensor([1.5]))


def test_ema_leaves_buffers_alone():
    student, teacher = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    student.running_mean.fill_(5.0)
    update_teacher(student, teacher, momentum=0.5)
    assert torch.equal(teacher.running_mean, torch.zeros(2))  # DINO's EMA covers parameters only


def test_param_groups_exempt_biases_and_1d_parameters():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    plain, regularized = param_groups(model)  # timm's order: no decay, then decay
    assert [p.shape for p in regularized["params"]] == [torch.Size([4, 3])] and regularized["regularized"]
    assert len(plain["params"]) == 3 and plain["weight_decay"] == 0.0 and not plain["regularized"]
    optimizer = build_optimizer(model, "adamw")
    apply_schedules(optimizer, lr=0.1, weight_decay=0.3)
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.1]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.0, 0.3]


def test_optimizer_registry():
    model = nn.Linear(2, 2)
    assert isinstance(build_optimizer(model, "lars"), Lars)
    assert isinstance(build_optimizer(model, "adamw"), torch.optim.AdamW)
    with pytest.raises(ValueError, match="valid"):
        build_optimizer(model, "adam")


def test_clip_gradients_per_tensor():
    model = nn.Linear(2, 1)
    model.weight.grad = torch.tensor([[3.0, 4.0]])  # norm 5 -> rescaled to norm 1
    model.bias.grad = torch.tensor([0.5])  # norm 0.5 < 1: untouched
    clip_per_tensor(model, 1.0)
    torch.testing.assert_close(model.weight.grad, torch.tensor([[0.6, 0.8]]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.bias.grad, torch.tensor([0.5]))


def test_last_layer_frozen_during_the_first_epochs_only():
    head = DINOHead(4, out_dim=6, hidden_dim=5, bottleneck_dim=3, norm_last_layer=False)
    head(torch.randn(2, 4)).sum().backward()
    last = [p for n, p in head.named_parameters() if "last_layer" in n]
    cancel_last_layer_gradients(head, epoch=1, freeze_last_layer=1)
    assert all(p.grad is not None for p in last)
    cancel_last_layer_gradients(head, epoch=0, freeze_last_layer=1)
    assert all(p.grad is None for p in last)
    assert all(p.grad is not None for n, p in head.named_parameters() if "mlp" in n)
