"""One training step, shared by the supervised loop and the throughput benchmark.

``forward_backward`` is one micro-batch (Mixup/CutMix, autocast, loss / accum_steps, scaled backward);
``optimizer_step`` is one update (unscale for fp16, gradient-norm clipping, step, zero the gradients).
"""

from __future__ import annotations

import torch
from timm.data import Mixup
from torch import nn

from .aug_splits import split_major
from .validation import autocast


def forward_backward(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    criterion: nn.Module,
    mixup: Mixup | None = None,
    scaler: torch.amp.GradScaler | None = None,
    amp: str = "none",
    accum_steps: int = 1,
    channels_last: bool = False,
) -> tuple[torch.Tensor, int]:
    """Forward and backward of one micro-batch ``images (B, C, H, W)``, ``targets (B,)`` on the model's device.

    Augmentation splits come as ``(B, S, C, H, W)`` and are trained as ``S * B`` inputs (timm's layout).

    The loss is divided by ``accum_steps`` before backward, so that gradients summed over the micro-batches
    of an update are those of the mean loss over the update's batch.

    Returns:
        the detached (undivided) mean loss and the number of inputs it covers (``S * B`` with splits).
    """
    if images.ndim == 5:  # augmentation splits (B, S, C, H, W): S * B inputs, view-major, targets repeated
        images, targets = split_major(images, targets)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    soft = targets
    if mixup is not None:
        if len(targets) % 2:  # timm's Mixup pairs samples: drop one after a skipped image
            images, targets = images[:-1], targets[:-1]
        images, soft = mixup(images, targets)
    with autocast(images.device, amp):
        loss = criterion(model(images), soft)
    scaled = loss / accum_steps
    (scaler.scale(scaled) if scaler is not None else scaled).backward()
    return loss.detach(), len(targets)


def optimizer_step(optimizer, scaler, model: nn.Module, clip_grad: float | None) -> None:
    """One update: unscale (fp16), clip the global gradient norm when asked, step, zero the gradients."""
    if scaler is not None:
        if clip_grad:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        scaler.step(optimizer)
        scaler.update()
    else:
        if clip_grad:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
