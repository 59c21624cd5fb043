"""Linear-probe heads (DINO's initialisation, top-1 per head) and ``simpool eval linear`` end to end."""

import json

import pytest
import torch

from simpool.cli import main
from simpool.evaluate.linear import LinearHeads, top1_per_head


def test_initialisation_is_dino():
    torch.manual_seed(0)
    heads = LinearHeads(2000, 50, count=2)
    for head in heads.heads:
        assert head.weight.std().item() == pytest.approx(0.01, rel=0.02) and head.bias.abs().max() == 0
    assert heads(torch.zeros(3, 2000)).shape == (2, 3, 50)


def test_top1_per_head_counts_argmax_hits():
    # two heads over 2-d features: head 0 predicts the larger coordinate (both right), head 1 the smaller (both wrong)
    heads = LinearHeads(2, 2, count=2)
    with torch.no_grad():
        heads.heads[0].weight.copy_(torch.eye(2))
        heads.heads[1].weight.copy_(1 - torch.eye(2))
    features, labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    assert top1_per_head(heads, features, labels, batch_size=1).tolist() == [100.0, 0.0]


@pytest.mark.parametrize("mode", [[], ["--cached", "--lrs", "0.001", "1.0"]])
def test_cli_end_to_end(tmp_path, mode, write_image_folder, tiny_vit_args, capsys):
    for seed, (split, count) in enumerate((("train", 4), ("val", 2))):  # a red and a blue class
        write_image_folder(
            tmp_path / split, per_class=count, size=40, seed=seed, colours=[(220, 20, 20), (20, 20, 220)], noise=10
        )
    argv = ["eval", "linear", "--data", str(tmp_path), "--model", "vit_tiny_patch16_224"]
    argv += ["--model-kwargs", *tiny_vit_args]
    argv += ["--epochs", "2", "--resize", "32", "--img-size", "32", "--batch-size", "4", "--workers", "0"]
    argv += ["--device", "cpu", "--no-progress", "--out", str(tmp_path / "l.json"), *mode]
    assert main(argv) == 0
    result = json.loads((tmp_path / "l.json").read_text())
    assert len(result["heads"]) == (2 if mode else 1) and len(result["heads"][0]["top1_per_epoch"]) == 2
    if mode:  # the learning rates read as given (0.001 was "0.00")
        lrs = [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:4]]
        assert lrs == ["0.001", "1"]
