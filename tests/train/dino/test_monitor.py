"""The k-NN monitor: its class-balanced subset, chosen once per run, and every rank gathering or raising together."""

from __future__ import annotations

import json
import textwrap

import pytest
import timm
import torch

from simpool.train.dino import monitor as monitor_module
from simpool.train.dino.config import DinoConfig
from simpool.train.dino.monitor import KnnMonitor, spread_over_classes
from simpool.train.engine import single_process


def test_the_knn_subset_takes_an_equal_share_of_every_class():
    targets = [0] * 6 + [1] * 2 + [2] * 10  # a class-sorted folder: 18 images
    # share 9 // 3 = 3: class 0 at 0, 2.5 -> 3 (round half to even), 5; class 1 has only 2; class 2 at 8, 12.5, 17
    assert spread_over_classes(targets, 9) == [0, 2, 5, 6, 7, 8, 12, 17]
    assert spread_over_classes(targets, 0) == list(range(18)) == spread_over_classes(targets, 18)


def monitor_config(root, max_images: int = 0) -> DinoConfig:
    config = DinoConfig()
    config.data.root, config.data.global_size, config.data.num_workers = str(root), 32, 0
    config.monitor.max_images, config.monitor.k, config.monitor.batch_size = max_images, 3, 4
    return config


def test_the_folders_are_scanned_once_per_run(tmp_path, write_image_folder, monkeypatch):
    for split in ("train", "val"):
        write_image_folder(tmp_path / split, classes=2, per_class=3, size=32)
    scans = []
    create = monitor_module.create_dataset
    monkeypatch.setattr(monitor_module, "create_dataset", lambda *a, **k: scans.append(a[2]) or create(*a, **k))
    torch.manual_seed(0)
    backbone = timm.create_model("test_resnet", num_classes=0)
    monitor = KnnMonitor(monitor_config(tmp_path), single_process())
    first, second = monitor(backbone), monitor(backbone)
    assert scans == ["train", "val"] and first == second
    assert backbone.training  # its mode restored


class Unsized(torch.nn.Module):
    """A backbone that states no width (no ``head_hidden_size``, ``num_features`` or ``embed_dim``): pooled width 5."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 5)

    def forward_features(self, x):
        return self.linear(x.mean((2, 3)))  # (B, 3, H, W) -> (B, 3) -> (B, 5)

    def forward_head(self, x, pre_logits=False):
        return x


def test_an_empty_share_takes_its_width_from_the_model_without_a_forward(tmp_path):
    monitor = KnnMonitor(monitor_config(tmp_path), single_process())
    empty = torch.utils.data.Subset(torch.utils.data.TensorDataset(torch.zeros(0)), [])
    resnet = timm.create_model("test_resnet", num_classes=0)
    for backbone, width, forward in [(resnet, 96, False), (Unsized(), 5, True)]:
        calls = []
        for module in backbone.modules():
            module.register_forward_pre_hook(lambda module, args, calls=calls: calls.append(type(module).__name__))
        features, labels = monitor._embed(backbone, empty)
        assert features.shape == (0, width) and labels.shape == (0,) and labels.dtype == torch.long
        assert (calls != []) == forward  # test_resnet's 96 from num_features: no forward pass


SCRIPT = """
import json, sys, timm, torch
from simpool.train.distributed import cleanup, init_distributed
from simpool.train.dino import monitor as monitor_module
from simpool.train.dino.config import DinoConfig
from simpool.train.dino.monitor import KnnMonitor

def config(max_images):
    config = DinoConfig()
    config.data.root, config.data.global_size, config.data.num_workers = sys.argv[1], 32, 0
    config.monitor.max_images, config.monitor.k, config.monitor.batch_size = max_images, 3, 4
    return config

def main():
    info = init_distributed("cpu", timeout_s=60)
    torch.manual_seed(0)
    backbone = timm.create_model("test_resnet", num_classes=0)
    out = {"shared": KnnMonitor(config(3), info)(backbone)}  # one image per class: one per rank
    out["alone_share"] = len(KnnMonitor(config(1), info)._shard("train"))
    out["one_image"] = KnnMonitor(config(1), info)(backbone)  # rank 1's shares are empty
    if info.rank == 1:  # rank 1's images cannot be read: every rank raises, none waits at the gather
        monitor_module.extract_features = lambda *args, **kwargs: (_ for _ in ()).throw(ValueError("unreadable"))
    try:
        KnnMonitor(config(0), info)(backbone)
        out["failed"] = "no error"
    except ValueError as error:
        out["failed"] = str(error)
    with open(f"{sys.argv[1]}/rank{info.rank}.json", "w") as file:
        json.dump(out, file)

main()
cleanup()
"""


@pytest.mark.slow
def test_two_ranks_gather_an_empty_share_and_raise_together(tmp_path, write_image_folder, torchrun):
    for split in ("train", "val"):
        write_image_folder(tmp_path / split, classes=2, per_class=3, size=32)
    script = tmp_path / "monitor.py"
    script.write_text(textwrap.dedent(SCRIPT))
    result = torchrun(script, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    torch.manual_seed(0)
    backbone = timm.create_model("test_resnet", num_classes=0)
    alone = {n: KnnMonitor(monitor_config(tmp_path, n), single_process())(backbone) for n in (3, 1)}
    assert [r["alone_share"] for r in ranks] == [1, 0]
    for out in ranks:
        assert out["shared"] == pytest.approx(alone[3]) and out["one_image"] == pytest.approx(alone[1])
    assert ranks[1]["failed"] == "unreadable" and ranks[0]["failed"] == "rank 1 failed: ValueError: unreadable"
