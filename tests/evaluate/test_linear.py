"""Linear probe (DINO protocol) and the grid of heads trained in one pass."""

import copy
import json
import math

import pytest
import torch

from simpool.cli import main
from simpool.evaluate.linear import LinearHeads, fit_linear_heads, linear_probe_cached, top1_per_head


def batches_of(features, labels, size=8):
    return lambda epoch: [(features[i : i + size], labels[i : i + size]) for i in range(0, len(features), size)]


def test_initialisation_is_dino():
    torch.manual_seed(0)
    heads = LinearHeads(2000, 50, count=2)
    for head in heads.heads:
        assert head.weight.std().item() == pytest.approx(0.01, rel=0.02) and head.bias.abs().max() == 0
    assert heads(torch.zeros(3, 2000)).shape == (2, 3, 50)


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


@pytest.mark.parametrize("mode", [[], ["--cached", "--lrs", "0.01", "1.0"]])
def test_cli_end_to_end(tmp_path, mode, write_image_folder, tiny_vit_args):
    for seed, (split, count) in enumerate((("train", 4), ("val", 2))):  # a red and a blue class
        write_image_folder(
            tmp_path / split, per_class=count, size=40, seed=seed, colours=[(220, 20, 20), (20, 20, 220)], noise=10
        )
    argv = ["eval", "linear", "--data-path", str(tmp_path), "--model", "vit_tiny_patch16_224"]
    argv += ["--model-kwargs", *tiny_vit_args]
    argv += ["--epochs", "2", "--resize", "32", "--crop", "32", "--batch-size", "4", "--workers", "0"]
    argv += ["--device", "cpu", "--no-progress", "--output", str(tmp_path / "l.json"), *mode]
    assert main(argv) == 0
    result = json.loads((tmp_path / "l.json").read_text())
    assert len(result["heads"]) == (2 if mode else 1) and len(result["heads"][0]["top1_per_epoch"]) == 2
