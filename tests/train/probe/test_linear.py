"""The linear-probe protocol (DINO): the grid of linear heads in one pass, the lr scaling and schedule, the best
epoch."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from simpool.train.probe.grid import linear_grid
from simpool.train.probe.linear import LinearProbeRecipe, ShuffledFeatures, linear_probe_cached


def batches_of(features, labels, size=8):
    return [(features[i : i + size], labels[i : i + size]) for i in range(0, len(features), size)]


def fit(grid, features, labels, epochs, batch_size, train=None) -> dict:
    train = train if train is not None else batches_of(features, labels, batch_size)
    return LinearProbeRecipe(grid, train, features, labels, epochs, batch_size, progress=False).fit()


def test_grid_equals_separate_runs():
    # each head's gradient is that of its own loss, so training two heads together equals two separate runs
    torch.manual_seed(0)
    features, labels = torch.randn(40, 6), torch.randint(0, 3, (40,))
    grid = linear_grid(6, 3, [0.5, 5.0])
    singles = []
    for head, (_, lr, *_) in zip(grid.heads, grid.entries, strict=True):
        single = linear_grid(6, 3, [lr])
        single.heads[0] = copy.deepcopy(head)
        singles.append(single)
    together = fit(grid, features, labels, epochs=3, batch_size=8)
    for single, head, summary in zip(singles, grid.heads, together["heads"], strict=True):
        alone = fit(single, features, labels, epochs=3, batch_size=8)
        torch.testing.assert_close(single.heads[0].fc.weight, head.fc.weight)
        assert alone["heads"][0]["top1_per_epoch"] == summary["top1_per_epoch"]


def test_learning_rate_scaling_and_cosine_schedule(monkeypatch):
    # one head, features x = 1, zero initial weights: the first SGD step moves the bias by
    # lr * batch/256 * dCE/db, with dCE/db = softmax - onehot = (1/2 - 1, 1/2) for a label 0 over 2 classes
    features, labels = torch.ones(4, 1), torch.zeros(4, dtype=torch.long)
    grid = linear_grid(1, 2, [1.0])
    torch.nn.init.zeros_(grid.heads[0].fc.weight)
    fit(grid, features, labels, epochs=1, batch_size=4)
    lr = 1.0 * 4 / 256
    torch.testing.assert_close(grid.heads[0].fc.bias.data, torch.tensor([0.5 * lr, -0.5 * lr]))
    # cosine to 0 per epoch: with 2 epochs the second uses lr * (1 + cos(pi / 2)) / 2 = lr / 2
    seen = []
    original = torch.optim.SGD.step

    def spy(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", spy)
    fit(linear_grid(1, 2, [1.0]), features, labels, epochs=2, batch_size=4)
    assert seen == pytest.approx([lr, lr * (1 + math.cos(math.pi / 2)) / 2])


def test_reports_best_epoch_and_learns_separable_data():
    torch.manual_seed(0)
    centres = torch.eye(4) * 5
    labels = torch.arange(4).repeat(25)
    features = centres[labels] + 0.3 * torch.randn(100, 4)
    result = linear_probe_cached(
        features, labels, features, labels, lrs=(0.01, 30.0), epochs=5, batch_size=16, progress=False
    )
    for head in result["heads"]:
        assert head["best_top1"] == max(head["top1_per_epoch"])
        assert head["top1_per_epoch"][head["best_epoch"] - 1] == head["best_top1"]
        assert head["final_top1"] == head["top1_per_epoch"][-1] and len(head["top1_per_epoch"]) == 5
    assert [head["lr"] for head in result["heads"]] == [0.01, 30.0]
    assert result["best"]["best_top1"] == 100.0  # well-separated clusters
    assert result["best"] == max(result["heads"], key=lambda h: h["best_top1"])


def test_shuffled_features_draw_a_new_seeded_order_each_pass():
    features, labels = torch.arange(10.0)[:, None], torch.arange(10)
    shuffled = ShuffledFeatures(features, labels, 4, seed=1)
    first, second = ([batch.tolist() for _, batch in shuffled] for _ in range(2))  # two passes
    assert [len(batch) for batch in first] == [4, 4, 2] and sorted(sum(first, [])) == list(range(10))
    assert first != second
    again = ShuffledFeatures(features, labels, 4, seed=1)
    assert [[batch.tolist() for _, batch in again] for _ in range(2)] == [first, second]  # seeded
    with pytest.raises(ValueError, match="one label per row"):
        ShuffledFeatures(features, labels[:9], 4)
