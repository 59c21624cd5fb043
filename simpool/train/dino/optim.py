"""DINO's optimisation: parameter groups, AdamW / SGD / LARS, and per-iteration cosine schedules.

DINO: Caron et al., ICCV 2021 (``main_dino.py`` and ``utils.py::cosine_scheduler``,
``get_params_groups``, ``LARS``, Apache-2.0). The learning rate, the weight decay and the teacher
momentum all follow a cosine per optimizer update; the learning rate first warms up linearly from 0.
LARS is timm's (``timm.optim.Lars``): like DINO's, it adapts only parameters with weight decay, and
the 1-D parameters (biases, norms, SimPool's ``beta``) are in the group without weight decay.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from timm.optim import Lars, param_groups_weight_decay
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn


def cosine_schedule(
    base_value: float,
    final_value: float,
    epochs: int,
    updates_per_epoch: int,
    warmup_epochs: int = 0,
    start_warmup_value: float = 0.0,
) -> np.ndarray:
    """One value per update: linear warm-up, then ``final + (base - final) (1 + cos(pi t / T)) / 2``.

    As DINO's ``cosine_scheduler``: ``warmup_epochs * updates_per_epoch`` values from
    ``start_warmup_value`` to ``base_value`` (``linspace``, both ends included), then ``T`` cosine values
    for ``t = 0 .. T - 1``, so the last value is just above ``final_value``.

    Returns:
        ``(epochs * updates_per_epoch,)`` float64.
    """
    if epochs < 1 or updates_per_epoch < 1:
        raise ValueError(f"epochs ({epochs}) and updates_per_epoch ({updates_per_epoch}) must be >= 1")
    if not 0 <= warmup_epochs <= epochs:
        raise ValueError(f"warmup_epochs must be in [0, {epochs}], got {warmup_epochs}")
    warmup_updates = warmup_epochs * updates_per_epoch
    warmup = np.linspace(start_warmup_value, base_value, warmup_updates)
    steps = np.arange(epochs * updates_per_epoch - warmup_updates)
    cosine = final_value + 0.5 * (base_value - final_value) * (1 + np.cos(np.pi * steps / max(len(steps), 1)))
    return np.concatenate((warmup, cosine))


def param_groups(model: nn.Module) -> list[dict]:
    """timm's ``param_groups_weight_decay``: biases and 1-D parameters without weight decay, the rest with.

    The regularised group is marked ``"regularized": True``: :func:`apply_schedules` sets its weight decay
    every update (the ``1.0`` here is a placeholder until the first update).
    """
    groups = param_groups_weight_decay(model, weight_decay=1.0)  # [no decay, decay], trainable parameters only
    for group in groups:
        group["regularized"] = group["weight_decay"] > 0
    return groups


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adamw": lambda groups, momentum: torch.optim.AdamW(groups),
    "sgd": lambda groups, momentum: torch.optim.SGD(groups, lr=0.0, momentum=momentum),
    "lars": lambda groups, momentum: Lars(groups, lr=0.0, momentum=momentum),
}


def build_optimizer(model: nn.Module, opt: str, momentum: float = 0.9) -> torch.optim.Optimizer:
    """DINO's optimizer over :func:`param_groups`; learning rate and weight decay come from the schedules.

    Args:
        opt: ``adamw`` (ViT, ConvNeXt), ``lars`` (ResNet-50) or ``sgd``.
        momentum: for SGD and LARS (0.9, as DINO).
    """
    if opt not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {opt!r}; valid: {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[opt](param_groups(model), momentum)


def apply_schedules(optimizer: torch.optim.Optimizer, lr: float, weight_decay: float) -> None:
    """Set every group's learning rate and the regularised group's weight decay for this update."""
    for group in optimizer.param_groups:
        group["lr"] = lr
        if group.get("regularized", False):
            group["weight_decay"] = weight_decay


def cancel_last_layer_gradients(model: nn.Module, epoch: int, freeze_last_layer: int) -> None:
    """Drop the gradients of the head's last layer during the first ``freeze_last_layer`` epochs (DINO)."""
    if epoch >= freeze_last_layer:
        return
    for name, param in model.named_parameters():
        if "last_layer" in name:
            param.grad = None


@torch.no_grad()
def update_teacher(student: nn.Module, teacher: nn.Module, momentum: float) -> None:
    """EMA of the parameters (not the buffers): ``theta_t <- m theta_t + (1 - m) theta_s`` (DINO eq. 3)."""
    student_params = [p.detach() for p in student.parameters()]
    teacher_params = list(teacher.parameters())
    if len(student_params) != len(teacher_params):
        raise ValueError(f"student has {len(student_params)} parameters, teacher {len(teacher_params)}")
    get_ema_multi_avg_fn(momentum)(teacher_params, student_params, None)  # torch's EMA: one foreach lerp
