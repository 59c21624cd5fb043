"""DINOLoss against a plain re-derivation of DINO's loop, the centre update and the temperature schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simpool.train.dino.loss import DINOLoss, dino_cross_entropy, teacher_temperature_schedule


def reference_dino_loss(student, teacher, center, num_crops, student_temp, teacher_temp):
    """DINO's ``DINOLoss.forward`` written out with loops over views, images and classes."""
    batch = student.shape[0] // num_crops
    student_views = [student[v * batch : (v + 1) * batch] / student_temp for v in range(num_crops)]
    teacher_views = [
        torch.softmax((teacher[g * batch : (g + 1) * batch] - center) / teacher_temp, dim=-1) for g in range(2)
    ]
    total, terms = 0.0, 0
    for g, probs in enumerate(teacher_views):
        for v, logits in enumerate(student_views):
            if v == g:  # the same crop seen by both: skipped
                continue
            per_image = []
            for i in range(batch):
                log_p = logits[i] - torch.logsumexp(logits[i], dim=0)
                per_image.append(sum(-probs[i, k] * log_p[k] for k in range(probs.shape[1])))
            total += sum(per_image) / batch
            terms += 1
    return total / terms


@pytest.mark.parametrize("num_crops", [2, 3, 8])
@pytest.mark.parametrize("student_temp,teacher_temp", [(0.1, 0.04), (0.1, 0.07), (0.5, 1.0)])
def test_loss_matches_the_loop_over_view_pairs(num_crops, student_temp, teacher_temp):
    torch.manual_seed(num_crops)
    batch, out_dim = 3, 5
    student = torch.randn(num_crops * batch, out_dim, dtype=torch.float64)
    teacher = torch.randn(2 * batch, out_dim, dtype=torch.float64)
    center = torch.randn(1, out_dim, dtype=torch.float64) * 0.1
    loss_fn = DINOLoss(out_dim, num_crops, teacher_temp, teacher_temp, 0, 10, student_temp, center_momentum=0.9)
    loss_fn.center.copy_(center)
    loss = loss_fn(student, teacher, epoch=0)
    expected = reference_dino_loss(student, teacher, center, num_crops, student_temp, teacher_temp)
    torch.testing.assert_close(loss.double(), torch.as_tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-6)


def test_pair_count_two_global_views_only():
    # Teacher uniform over K=4 classes, student uniform too: every pair's cross-entropy is log 4, so the
    # mean is log 4 whatever the number of pairs (2 * (V - 1) = 10 for V = 6).
    student = torch.zeros(6 * 2, 4)
    teacher = torch.full((2 * 2, 4), 0.25)
    assert dino_cross_entropy(student, teacher, 6).item() == pytest.approx(np.log(4))


def test_loss_rejects_inconsistent_shapes():
    with pytest.raises(ValueError, match="num_crops"):
        dino_cross_entropy(torch.zeros(7, 4), torch.zeros(2, 4), 2)
    with pytest.raises(ValueError, match="teacher_probs"):
        dino_cross_entropy(torch.zeros(4, 4), torch.zeros(6, 4), 2)  # 3 teacher views for 2 student views


def test_center_update_is_an_ema_of_the_batch_mean():
    loss_fn = DINOLoss(out_dim=2, num_crops=2, center_momentum=0.9)
    loss_fn.center.copy_(torch.tensor([[1.0, -1.0]]))
    teacher = torch.tensor([[2.0, 0.0], [4.0, 2.0]])  # batch mean (3, 1)
    loss_fn(torch.zeros(2, 2), teacher, epoch=0)  # 2 views of 1 image
    # 0.9 * (1, -1) + 0.1 * (3, 1) = (1.2, -0.8)
    torch.testing.assert_close(loss_fn.center, torch.tensor([[1.2, -0.8]]))


def test_centering_uses_the_old_center_then_updates():
    # With center c = teacher output of every row, the centred teacher is uniform: loss = log K.
    loss_fn = DINOLoss(out_dim=3, num_crops=2)
    teacher = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    loss_fn.center.copy_(teacher[:1])
    loss = loss_fn(torch.zeros(2, 3), teacher, epoch=0)
    assert loss.item() == pytest.approx(np.log(3), rel=1e-6)


def test_teacher_temperature_warms_up_linearly_then_stays():
    temps = teacher_temperature_schedule(0.04, 0.07, warmup_epochs=4, epochs=6)
    np.testing.assert_allclose(temps, [0.04, 0.05, 0.06, 0.07, 0.07, 0.07])
    loss_fn = DINOLoss(3, 2, 0.04, 0.07, 4, 6)
    assert loss_fn.teacher_temps[1] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="warmup_teacher_temp_epochs"):
        teacher_temperature_schedule(0.04, 0.07, warmup_epochs=7, epochs=6)


def test_teacher_temperature_of_the_epoch_is_used():
    # epoch 0 of a warm-up 1.0 -> 0.5 uses 1.0; the loss must equal the reference at that temperature.
    torch.manual_seed(0)
    student, teacher = torch.randn(4, 3), torch.randn(4, 3)
    loss_fn = DINOLoss(3, 2, warmup_teacher_temp=1.0, teacher_temp=0.5, warmup_teacher_temp_epochs=2, epochs=3)
    loss_epoch0 = loss_fn(student, teacher, epoch=0)
    expected = reference_dino_loss(student, teacher, torch.zeros(1, 3), 2, 0.1, 1.0)
    torch.testing.assert_close(loss_epoch0, torch.as_tensor(expected, dtype=torch.float32))


def test_the_loss_and_its_gradient_under_bf16_autocast_equal_float32():
    """The caller's autocast does not reach the loss (before: loss 4e-4 and gradient 2e-3 off on the CPU)."""
    torch.manual_seed(0)
    out_dim, batch, num_crops = 4096, 8, 4
    student = torch.randn(num_crops * batch, out_dim, requires_grad=True)  # (V * B, K)
    teacher = torch.randn(2 * batch, out_dim)  # (G * B, K)

    def loss_and_grad(autocast: bool):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = DINOLoss(out_dim, num_crops)(student, teacher, epoch=0)
        return loss, torch.autograd.grad(loss, student)[0]

    loss32, grad32 = loss_and_grad(False)
    loss16, grad16 = loss_and_grad(True)
    assert loss16.dtype == torch.float32
    assert abs(loss16.item() - loss32.item()) / abs(loss32.item()) < 1e-5
    assert ((grad16 - grad32).abs().max() / grad32.abs().max()).item() < 1e-4
