"""Training a linear probe (DINO protocol): the grid of heads trained in one pass, the schedule, the best epoch."""

import copy
import math

import pytest
import torch

from simpool.evaluate.linear import LinearHeads, top1_per_head
from simpool.train.linear_probe import fit_linear_heads, linear_probe_cached


def batches_of(features, labels, size=8):
    return lambda epoch: [(features[i : i + size], labels[i : i + size]) for i in range(0, len(features), size)]


def test_grid_equals_separate_runs():
    # each head's gradient is that of its own loss, so training two heads together equals two separate runs
    torch.manual_seed(0)
    features, labels = torch.randn(40, 6), torch.randint(0, 3, (40,))
    grid = LinearHeads(6, 3, count=2)
    singles = []
    for head in grid.heads:
        single = LinearHeads(6, 3, count=1)
        single.heads[0] = copy.deepcopy(head)
        singles.append(single)
    grid_result = fit_linear_heads(grid, batches_of(features, labels), features, labels, (0.5, 5.0), 3, 8, False)
    for single, lr, head, summary in zip(singles, (0.5, 5.0), grid.heads, grid_result["heads"], strict=True):
        alone = fit_linear_heads(single, batches_of(features, labels), features, labels, (lr,), 3, 8, False)
        torch.testing.assert_close(single.heads[0].weight, head.weight)
        assert alone["heads"][0]["top1_per_epoch"] == summary["top1_per_epoch"]


def test_learning_rate_scaling_and_cosine_schedule():
    # one head, features x = 1, zero initial weights: the first SGD step moves the bias by
    # lr * batch/256 * dCE/db, with dCE/db = softmax - onehot = (1/2 - 1, 1/2) for a label 0 over 2 classes
    heads = LinearHeads(1, 2)
    torch.nn.init.zeros_(heads.heads[0].weight)
    features, labels = torch.ones(4, 1), torch.zeros(4, dtype=torch.long)
    fit_linear_heads(heads, lambda epoch: [(features, labels)], features, labels, (1.0,), 1, 4, False)
    lr = 1.0 * 4 / 256
    torch.testing.assert_close(heads.heads[0].bias.data, torch.tensor([0.5 * lr, -0.5 * lr]))
    # cosine to 0 per epoch: with 2 epochs the second uses lr * (1 + cos(pi / 2)) / 2 = lr / 2
    heads = LinearHeads(1, 2)
    torch.nn.init.zeros_(heads.heads[0].weight)
    seen = []
    original = torch.optim.SGD.step

    def spy(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    torch.optim.SGD.step = spy
    try:
        fit_linear_heads(heads, lambda epoch: [(features, labels)], features, labels, (1.0,), 2, 4, False)
    finally:
        torch.optim.SGD.step = original
    assert seen == pytest.approx([lr, lr * (1 + math.cos(math.pi / 2)) / 2])


def test_reports_best_epoch_and_learns_separable_data():
    torch.manual_seed(0)
    centres = torch.eye(4) * 5
    labels = torch.arange(4).repeat(25)
    features = centres[labels] + 0.3 * torch.randn(100, 4)
    result = linear_probe_cached(features, labels, features, labels, lrs=(0.01, 30.0), epochs=5, batch_size=16,
                                 progress=False)  # fmt: skip
    for head in result["heads"]:
        assert head["best_top1"] == max(head["top1_per_epoch"])
        assert head["top1_per_epoch"][head["best_epoch"] - 1] == head["best_top1"]
    assert result["best"]["best_top1"] == 100.0  # well-separated clusters
    assert result["best"] == max(result["heads"], key=lambda h: h["best_top1"])
    assert top1_per_head(LinearHeads(4, 4, 3), features, labels).shape == (3,)
    with pytest.raises(ValueError, match="learning rates"):
        fit_linear_heads(LinearHeads(4, 4, 2), batches_of(features, labels), features, labels, (1.0,), 1, 8, False)
