"""Augmentation splits and BatchNorm options of timm (--aug-splits, --jsd, --split-bn, --dist-bn) in training; the
split views themselves are tested with the transforms (tests/data/test_transforms.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from timm.layers import SplitBatchNorm2d, convert_splitbn_model
from timm.loss import JsdCrossEntropy

from simpool.train.checkpointing import load_state
from simpool.train.config import load_config
from simpool.train.distributed import DistInfo, synchronize_batchnorm
from simpool.train.engine import single_process
from simpool.train.supervised.aug_splits import check_aug_splits, drop_aux_bn, split_major
from simpool.train.supervised.config import SupervisedConfig
from simpool.train.supervised.recipe import SupervisedRecipe, build_criterion, train
from tests.train.conftest import overrides


def test_split_major_layout_and_repeated_targets():
    images = torch.arange(2 * 3, dtype=torch.float32).reshape(2, 3, 1, 1, 1)  # (B=2, S=3): value 3 b + s
    flat, targets = split_major(images, torch.tensor([7, 8]))
    assert flat.flatten().tolist() == [0, 3, 1, 4, 2, 5]  # view 0 of both images, then view 1, then view 2
    assert targets.tolist() == [7, 8, 7, 8, 7, 8]


def test_the_supervised_step_feeds_the_jsd_loss_its_layout(tiny_data, tmp_path):
    splits = ["data.aug_splits=3", "data.jsd=true", "mixup.smoothing=0.0"]
    config = load_config(
        SupervisedConfig, None, [*overrides(tiny_data, tmp_path / "runs", train__batch_size=8), *splits]
    )
    recipe = SupervisedRecipe(config)
    recipe.build(single_process())
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    images, targets = torch.randn(4, 3, 3, 4, 4), torch.tensor([0, 1, 2, 3])  # (B, S, C, H, W)
    loss, count = recipe.step(model, images, targets, 1.0)
    flat = images.transpose(0, 1).reshape(12, 3, 4, 4)  # (S * B, C, H, W)
    expected = JsdCrossEntropy(num_splits=3, smoothing=0.0)(model(flat), targets.repeat(3))
    assert count == 12
    torch.testing.assert_close(loss, expected)


def test_criterion_and_bad_combinations():
    config = load_config(SupervisedConfig, None, ["data.aug_splits=3", "data.jsd=true", "mixup.smoothing=0.1"])
    criterion = build_criterion(config, None)
    assert isinstance(criterion, JsdCrossEntropy) and criterion.num_splits == 3
    check_aug_splits(3, jsd=True, split_bn=True, mixup=False)
    with pytest.raises(ValueError, match="aug_splits=1"):
        check_aug_splits(1, jsd=False, split_bn=False, mixup=False)
    with pytest.raises(ValueError, match="data.jsd needs data.aug_splits"):
        check_aug_splits(0, jsd=True, split_bn=False, mixup=False)
    with pytest.raises(ValueError, match="model.split_bn needs"):
        check_aug_splits(0, jsd=False, split_bn=True, mixup=False)
    with pytest.raises(ValueError, match="Mixup"):
        check_aug_splits(3, jsd=True, split_bn=False, mixup=True)
    with pytest.raises(ValueError, match="dist_bn"):
        synchronize_batchnorm(torch.nn.Identity(), DistInfo(0, 1, 0, torch.device("cpu")), "mean")


@pytest.mark.slow  # a resnet18 trained for two epochs
def test_resnet_with_splits_jsd_and_split_bn_trains_and_saves_plain_weights(tiny_data, tmp_path, tiny_resnet):
    resnet = ["model.name=resnet18", "model.pool=simpool", "model.kwargs={}"]
    splits = ["data.aug_splits=3", "data.resplit=true", "data.jsd=true", "model.split_bn=true", "data.reprob=0.5"]
    extra = dict(train__epochs=1, train__batch_size=8, mixup__smoothing=0.1)
    config = load_config(SupervisedConfig, None, [*overrides(tiny_data, tmp_path / "runs", **extra), *resnet, *splits])
    result = train(config)
    assert torch.isfinite(torch.tensor(result["train_loss"])) and 0.0 <= result["val_top1"] <= 100.0
    folder = Path(result["run_dir"])
    state = load_state(folder / "last.pt")["model"]  # the training state keeps the augmented views' BatchNorms
    assert any(".aux_bn." in key for key in state)
    weights = load_file(folder / "last.safetensors")
    assert not any(".aux_bn." in key for key in weights) and set(weights) == set(drop_aux_bn(state))
    plain = tiny_resnet()  # resnet18 with SimPool, 2 classes
    plain.load_state_dict(weights)  # strict: a plain model takes the saved weights as they are


DIST_BN_SCRIPT = """
import json, sys, torch
from simpool.train.distributed import cleanup, init_distributed, synchronize_batchnorm
info = init_distributed("cpu")
got = {}
for mode in ("reduce", "broadcast", ""):
    bn = torch.nn.BatchNorm2d(3)
    bn.running_mean.fill_(float(info.rank + 1))  # rank 0: 1, rank 1: 2
    bn.running_var.fill_(float(4 * info.rank + 1))  # rank 0: 1, rank 1: 5
    synchronize_batchnorm(torch.nn.Sequential(bn), info, mode)
    got[mode or "none"] = [bn.running_mean.tolist(), bn.running_var.tolist()]
with open(f"{sys.argv[1]}.{info.rank}", "w") as f:  # one file per process: stdout lines would interleave
    json.dump(got, f)
cleanup()  # destroy the process group: exiting with gloo's threads alive aborts
"""


@pytest.mark.slow
def test_dist_bn_over_two_gloo_processes(tmp_path, torchrun):
    script, out = tmp_path / "dist_bn.py", tmp_path / "bn"
    script.write_text(DIST_BN_SCRIPT)
    done = torchrun(script, out, timeout=120)
    assert done.returncode == 0, done.stderr
    got = [json.loads(Path(f"{out}.{rank}").read_text()) for rank in range(2)]
    for rank in range(2):  # mode: (running_mean, running_var) of the 3 channels
        assert got[rank]["reduce"] == [[1.5] * 3, [3.0] * 3]  # the average of ranks 0 and 1
        assert got[rank]["broadcast"] == [[1.0] * 3, [1.0] * 3]  # rank 0's
        assert got[rank]["none"] == [[float(rank + 1)] * 3, [float(4 * rank + 1)] * 3]  # each its own


def test_split_bn_keeps_the_clean_views_statistics_apart(tiny_resnet):
    torch.manual_seed(0)
    model = convert_splitbn_model(tiny_resnet(), num_splits=3)  # resnet18 with SimPool, 2 classes
    assert isinstance(model.bn1, SplitBatchNorm2d) and len(model.bn1.aux_bn) == 2
    clean, augmented = torch.zeros(2, 3, 32, 32), 5 + torch.randn(4, 3, 32, 32)
    model.train()
    model(torch.cat([clean, augmented]))  # (S * B, C, H, W) with B = 2: the first 2 are the clean view
    conv_clean = model.conv1(clean).mean((0, 2, 3))  # what the main BatchNorm saw
    momentum = model.bn1.momentum
    torch.testing.assert_close(model.bn1.running_mean, momentum * conv_clean.detach())
