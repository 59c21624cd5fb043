"""The grid: one backbone forward feeds every head x lr, each head trains as alone, tokens of the last blocks,
the pools' attention, and each head's accuracy counted by hand."""

from __future__ import annotations

import pytest
import torch

from simpool.train.engine import Engine
from simpool.train.probe.grid import (
    FrozenBackbone,
    ProbeHead,
    build_grid,
    evaluate_grid,
    grid_loss,
    grid_step,
    linear_grid,
)
from simpool.train.probe.optim import build_optimizer
from simpool.train.recipe import Loop, Parts, Recipe

from .conftest import HEADS, tiny_backbone


class GridOnBatches(Recipe):
    """A grid trained on fixed batches: ``epochs`` epochs of ``len(batches)`` updates."""

    def __init__(self, grid, batches: list, epochs: int):
        self.grid, self.data, self.epochs = grid, batches, epochs
        self.loop = Loop(progress=False)

    def build(self, info):
        optimizer = build_optimizer(self.grid, batch_size=len(self.data[0][1]))
        return Parts(self.grid, optimizer, epochs=self.epochs, updates_per_epoch=len(self.data))

    def batches(self, epoch, start_update):
        return [(images, labels, 0) for images, labels in self.data[start_update:]]

    def step(self, model, inputs, targets, weight):
        return grid_step(model, inputs, targets, torch.device("cpu"))


def test_one_backbone_forward_per_batch_feeds_every_head_and_lr(tiny_vit):
    backbone = tiny_backbone(tiny_vit)
    grid = build_grid(backbone, HEADS, [1e-3, 1e-2], num_classes=3, img_size=32)
    calls = []
    backbone.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    assert len(grid.heads) == 6
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    heads_before = [p.clone() for p in grid.heads.parameters()]
    images, labels = torch.randn(5 * 4, 3, 32, 32), torch.randint(0, 3, (20,))
    batches = [(images[i : i + 4], labels[i : i + 4]) for i in range(0, 20, 4)]
    Engine(GridOnBatches(grid, batches, epochs=2), Loop(progress=False)).run()
    assert calls == [4] * 10  # 2 epochs x 5 batches of 4, whatever the number of heads x lrs
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())
    assert all(not torch.equal(a, b) for a, b in zip(heads_before, grid.heads.parameters(), strict=True))


def test_each_head_gets_gradients_and_the_backbone_none(tiny_vit):
    grid = build_grid(tiny_backbone(tiny_vit), HEADS, [1e-3, 1e-2], num_classes=3, img_size=32, with_cls=True)
    grid.train()
    assert not grid.backbone.model.training  # frozen: eval mode whatever the grid's mode
    loss, count = grid_step(grid, torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0]), torch.device("cpu"))
    loss.backward()
    assert count == 4
    for head in grid.heads:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.fc.parameters()), head.name
    simpool = next(head for head in grid.heads if head.name == "simpool")
    assert all(p.grad.abs().sum() > 0 for p in simpool.pool.parameters())
    assert all(p.grad is None and not p.requires_grad for p in grid.backbone.parameters())


def test_the_sum_of_losses_trains_each_head_as_alone(tiny_vit):
    # each head's gradient is that of its own loss: the grid's update of a head equals that head's own update
    grid = build_grid(tiny_backbone(tiny_vit), ["simpool", "gap"], [1e-2], num_classes=3, img_size=32)
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    loss, _ = grid_step(grid, images, labels, torch.device("cpu"))
    loss.backward()
    tokens = grid.tokens(images)
    alone = torch.nn.functional.cross_entropy(grid.heads[0](tokens), labels)
    grads = torch.autograd.grad(alone, list(grid.heads[0].parameters()))
    for param, grad in zip(grid.heads[0].parameters(), grads, strict=True):
        torch.testing.assert_close(param.grad, grad)


def test_grid_loss_is_the_sum_of_each_heads_mean_cross_entropy():
    # two heads, one sample of class 0: logits (0, 0) cost log 2, logits (log 3, 0) cost log(4 / 3)
    logits = torch.tensor([[[0.0, 0.0]], [[torch.log(torch.tensor(3.0)), 0.0]]])  # (heads, B, classes)
    expected = torch.log(torch.tensor(2.0)) + torch.log(torch.tensor(4.0 / 3.0))
    torch.testing.assert_close(grid_loss(logits, torch.tensor([0])), expected)


def test_blocks_mean_and_concat(tiny_vit):
    model = tiny_vit(pool="default", depth=2)
    images = torch.randn(2, 3, 32, 32)
    last = FrozenBackbone(model)(images)  # (B, 1 + 16, 32)
    mean = FrozenBackbone(model, blocks=2, mode="mean")(images)
    concat = FrozenBackbone(model, blocks=2, mode="concat")(images)
    assert last.shape == mean.shape == (2, 17, 32) and concat.shape == (2, 17, 64)
    torch.testing.assert_close(concat[..., 32:], last)  # the last block's tokens come last
    torch.testing.assert_close(mean, (concat[..., :32] + concat[..., 32:]) / 2)
    torch.testing.assert_close(last, model.forward_features(images))  # the final norm applied, as the model does
    with pytest.raises(ValueError, match="valid: mean, concat"):
        FrozenBackbone(model, blocks=2, mode="max")


def test_multi_query_attention_is_the_mean_over_queries_on_patches_only():
    class TwoQueries(torch.nn.Module):
        def forward(self, x, return_attention=False):
            B, T, C = x.shape  # batch, tokens, channels
            attention = torch.stack([torch.eye(T)[0], torch.eye(T)[-1]]).expand(B, 2, T)  # (B, 2, T)
            pooled = x.mean(1)  # (B, C)
            return (pooled, attention) if return_attention else pooled

    head = ProbeHead("gap", 4, 3, num_prefix=1, with_cls=True)
    head.pool = TwoQueries()
    attention = head.attention(torch.randn(2, 5, 4))  # queries on the CLS token and on the last patch
    torch.testing.assert_close(attention, torch.tensor([[0, 0, 0, 0.5]] * 2))


def test_a_cnn_feature_map_gives_one_token_per_location(tiny_resnet):
    backbone = FrozenBackbone(tiny_resnet(pool="default", num_classes=0))
    tokens = backbone(torch.randn(2, 3, 64, 64))
    assert tokens.shape == (2, 4, 512) and backbone.grid == (2, 2) and backbone.num_prefix_tokens == 0
    grid = build_grid(backbone, ["linear", "simpool"], [1e-3], num_classes=3, img_size=64)
    assert grid(torch.randn(2, 3, 64, 64)).shape == (2, 2, 3)


def test_linear_grid_heads_start_as_dino_and_take_features_as_they_are():
    torch.manual_seed(0)
    grid = linear_grid(2000, 50, [1e-3, 1e-2])
    for head in grid.heads:
        assert head.fc.weight.std().item() == pytest.approx(0.01, rel=0.02) and head.fc.bias.abs().max() == 0
        assert isinstance(head.norm, torch.nn.Identity)  # DINO's linear probe: no BatchNorm
    features = torch.randn(3, 2000)
    logits = grid(features)  # (heads, B, classes)
    torch.testing.assert_close(logits[1], features @ grid.heads[1].fc.weight.T)
    assert grid.entries == [("linear", 1e-3, 0.0, ()), ("linear", 1e-2, 0.0, ())]
    with pytest.raises(ValueError, match=r"learning rates \(--lrs\) must be positive"):
        linear_grid(4, 2, [])


def test_evaluate_grid_counts_top1_and_top5_hits_by_hand():
    # head 0 predicts the larger coordinate (3 of 4 right), head 1 the smaller one (1 of 4 right)
    grid = linear_grid(2, 2, [0.1, 0.2])
    with torch.no_grad():
        grid.heads[0].fc.weight.copy_(torch.eye(2))
        grid.heads[1].fc.weight.copy_(1 - torch.eye(2))
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [3.0, 0.0]])
    labels = torch.tensor([0, 1, 0, 1])
    batches = [(features[:3], labels[:3]), (features[3:], labels[3:]), (features[:0], labels[:0])]
    scores = evaluate_grid(grid, batches, torch.device("cpu"))
    assert scores["top1"].tolist() == [75.0, 25.0] and scores["count"] == 4
    assert scores["top5"].tolist() == [100.0, 100.0]  # 2 classes: both are in every top 5
