"""DINO's self-distillation loss with centering and a teacher temperature warm-up.

DINO: Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021
(``facebookresearch/dino``, ``main_dino.py::DINOLoss``, Apache-2.0). The SimPool paper pre-trains
with it unchanged (Appendix C.2).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import all_reduce_sum


def dino_cross_entropy(student_logits: torch.Tensor, teacher_probs: torch.Tensor, num_crops: int) -> torch.Tensor:
    """Mean over (teacher view, student view) pairs with different views of ``-sum_k P_t log P_s``.

    DINO eq. (2): ``L = 1 / |pairs| sum_{x in G} sum_{x' in V, x' != x} H(P_t(x), P_s(x'))``, where ``G``
    are the teacher's (global) views and ``V`` all the student's views; each ``H`` is averaged over the batch.

    Args:
        student_logits: ``(V * B, K)`` student outputs already divided by the student temperature,
            view-major (the ``B`` images of view 0, then of view 1, ...).
        teacher_probs: ``(G * B, K)`` teacher probabilities, view-major, ``G <= V``; teacher view ``g``
            is the same crop as student view ``g``.
        num_crops: ``V``, the number of student views.
    """
    if student_logits.shape[0] % num_crops:
        raise ValueError(f"student_logits has {student_logits.shape[0]} rows, not a multiple of num_crops={num_crops}")
    batch = student_logits.shape[0] // num_crops
    num_teacher = teacher_probs.shape[0] // batch
    if num_teacher * batch != teacher_probs.shape[0] or num_teacher > num_crops:
        raise ValueError(
            f"teacher_probs has {teacher_probs.shape[0]} rows: expected G * {batch} with G <= {num_crops} views"
        )
    log_student = F.log_softmax(student_logits.float(), dim=-1).view(num_crops, batch, -1)  # (V, B, K)
    teacher = teacher_probs.float().view(num_teacher, batch, -1)  # (G, B, K)
    total, pairs = student_logits.new_zeros((), dtype=torch.float32), 0
    for g in range(num_teacher):
        for v in range(num_crops):
            if v != g:  # elementwise products summed over K, as DINO: no matmul that TF32 would round
                total = total + torch.sum(-teacher[g] * log_student[v], dim=-1).mean()  # (B, K) -> (B,) -> ()
                pairs += 1
    return total / pairs


def teacher_temperature_schedule(
    warmup_teacher_temp: float, teacher_temp: float, warmup_epochs: int, epochs: int
) -> np.ndarray:
    """Per-epoch teacher temperature: linear ``warmup_teacher_temp -> teacher_temp`` over ``warmup_epochs``, then flat.

    As DINO: ``concat(linspace(warmup, temp, warmup_epochs), full(epochs - warmup_epochs, temp))``.
    """
    if warmup_epochs > epochs:
        raise ValueError(f"warmup_teacher_temp_epochs={warmup_epochs} exceeds the {epochs} epochs")
    return np.concatenate(
        (np.linspace(warmup_teacher_temp, teacher_temp, warmup_epochs), np.ones(epochs - warmup_epochs) * teacher_temp)
    )


class DINOLoss(nn.Module):
    """Cross-entropy between the centred, sharpened teacher and the student (DINO, ``main_dino.py``), in float32
    with autocast off whatever the caller does.

    ``P_t = softmax((g_t - c) / tau_t(epoch))``, ``P_s = softmax(g_s / tau_s)``; the loss is
    :func:`dino_cross_entropy`. After each call the centre follows the teacher's batch mean
    (reduced over processes): ``c <- m c + (1 - m) mean_i g_t(x_i)``.

    Args:
        out_dim: ``K``, the head's output width.
        num_crops: student views per image (2 global + local crops).
        warmup_teacher_temp: teacher temperature at epoch 0 (0.04).
        teacher_temp: teacher temperature after the warm-up (0.04; 0.07 for ResNet-50).
        warmup_teacher_temp_epochs: length of the linear warm-up (0: none; 30 in the ViT-S recipe).
        epochs: length of the run.
        student_temp: ``tau_s`` (0.1).
        center_momentum: ``m`` (0.9).
    """

    def __init__(
        self,
        out_dim: int,
        num_crops: int,
        warmup_teacher_temp: float = 0.04,
        teacher_temp: float = 0.04,
        warmup_teacher_temp_epochs: int = 0,
        epochs: int = 100,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
    ):
        super().__init__()
        if num_crops < 2:
            raise ValueError(f"num_crops must be at least 2 (the global crops), got {num_crops}")
        self.num_crops = num_crops
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.teacher_temps = teacher_temperature_schedule(
            warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, epochs
        )

    def forward(
        self, student_output: torch.Tensor, teacher_output: torch.Tensor, epoch: int, weight: float = 1.0
    ) -> torch.Tensor:
        """``student_output (V * B, K)``, ``teacher_output (G * B, K)``, view-major -> loss; updates the centre.

        ``weight`` scales this batch's share of the centre update (0: a stand-in batch that must still take
        part in the all-reduce, see :class:`simpool.train.engine.Engine`). Whatever the caller's autocast, the
        loss is computed in float32 with autocast off: called under bf16 autocast it equals the float32 loss.
        """
        temp = float(self.teacher_temps[min(epoch, len(self.teacher_temps) - 1)])
        with torch.autocast(student_output.device.type, enabled=False):
            student_output, teacher_output = student_output.float(), teacher_output.float()
            teacher_probs = F.softmax((teacher_output - self.center) / temp, dim=-1).detach()  # (G * B, K)
            loss = dino_cross_entropy(student_output / self.student_temp, teacher_probs, self.num_crops)
            self.update_center(teacher_output, weight)
        return loss

    @torch.no_grad()
    def update_center(self, teacher_output: torch.Tensor, weight: float = 1.0) -> None:
        """``c <- m c + (1 - m) * (sum of teacher outputs over all processes) / (rows over all processes)``.

        Every process calls it (one all-reduce); the centre stays as it is when no process had a row.
        No host sync: the row count is filled on the device and the no-row case is a ``where``.
        """
        rows = torch.full((1,), teacher_output.shape[0] * weight, dtype=torch.float32, device=teacher_output.device)
        totals = torch.cat([teacher_output.float().sum(dim=0) * weight, rows])  # (K + 1,): this process's sum, rows
        totals = all_reduce_sum(totals)
        count = totals[-1]
        batch_center = (totals[:-1] / count.clamp(min=1.0))[None]  # (1, K)
        updated = torch.add(self.center * self.center_momentum, batch_center, alpha=1 - self.center_momentum)
        self.center.copy_(torch.where(count > 0, updated, self.center))
