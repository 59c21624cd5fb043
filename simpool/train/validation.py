"""Top-k accuracy, reduced exactly over processes."""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from tqdm import tqdm

from .distributed import all_reduce_sum

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
AMP_CHOICES = (*AMP_DTYPES, "auto")


def resolve_amp(amp: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` on a CUDA device that has it, ``fp16`` on other CUDA devices (with a GradScaler, as
    DINO's ``--use_fp16``), ``none`` elsewhere; any other choice as it is."""
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {', '.join(AMP_CHOICES)}, not {amp!r}")
    if amp != "auto":
        return amp
    if device.type != "cuda":
        return "none"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def autocast(device: torch.device, amp: str):
    """``torch.autocast`` for ``amp`` in ``none | bf16 | fp16 | auto``; a null context for ``none``."""
    amp = resolve_amp(amp, device)
    if AMP_DTYPES[amp] is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> torch.Tensor:
    """How many of ``targets (B,)`` are among the ``k`` largest of ``logits (B, K)``, for each k: ``(len(ks),)``.

    A ``k`` above the number of classes counts every sample as correct.
    """
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices  # (B, k_max)
    hits = top == targets[:, None]  # (B, k_max)
    return torch.stack([hits[:, :k].any(dim=1).sum() for k in ks]).to(torch.float64)


@torch.no_grad()
def validate(
    model: nn.Module,
    loader,
    device: torch.device,
    amp: str = "none",
    progress: bool = False,
    channels_last: bool = False,
) -> dict:
    """Top-1, top-5 (percent) and mean cross-entropy of ``model`` over ``loader``, summed over processes.

    ``channels_last``: the inputs are given the model's memory layout (a channels-last model trained so).

    Returns:
        ``{"top1", "top5", "loss", "images", "skipped"}``.
    """
    model.eval()
    totals = torch.zeros(5, dtype=torch.float64, device=device)  # top1, top5, loss sum, images, skipped
    for images, targets, skipped in tqdm(loader, desc="validate", leave=False, disable=not progress):
        totals[4] += skipped
        if len(targets) == 0:
            continue
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = model(images)  # (B, K)
        logits = logits.float()
        totals[:2] += topk_correct(logits, targets).to(device)
        totals[2] += nn.functional.cross_entropy(logits, targets, reduction="sum").double()
        totals[3] += len(targets)
    top1, top5, loss, count, skipped = all_reduce_sum(totals).tolist()
    count = max(count, 1.0)
    return {
        "top1": 100 * top1 / count,
        "top5": 100 * top5 / count,
        "loss": loss / count,
        "images": int(count),
        "skipped": int(skipped),
    }
