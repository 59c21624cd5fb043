"""Attentive probing (issue 16): the grid in one pass, held-out selection, the token cache, resume, attention scores."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from simpool.data.token_cache import open_cache, write_cache
from simpool.evaluate.attention_quality import attention_quality, mask_mass
from simpool.train.config import from_dict
from simpool.train.probe import FrozenBackbone, ProbeHead, build_grid, build_optimizer, fit_grid, grid_step
from simpool.train.probe_config import ProbeConfig
from simpool.train.probe_run import cache_key, probe, split_holdout
from tests.conftest import TINY_VIT

HEADS = ["linear", "simpool", "gap"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    """A wsol bench export (40 training, 12 test images) whose ``dataset/`` is the probe's ``--data``."""
    from simpool.data.bench_export import export

    root = tmp_path_factory.mktemp("bench")
    export(root, "wsol", "original", split="train", num_images=40, progress=False)
    export(root, "wsol", "original", split="test", num_images=12, progress=False)
    return root


def config_of(data: Path, out: Path, **sections) -> ProbeConfig:
    values = {
        "model": {"name": "vit_tiny_patch16_224", "kwargs": dict(TINY_VIT)},
        "data": {"root": str(data), "val_split": "test", "img_size": 32, "num_workers": 0},
        "train": {
            "epochs": 1, "batch_size": 8, "device": "cpu", "num_threads": 1, "output": str(out.parent),
            "name": out.name, "progress": False, "log_every": 1,
        },
        "probe": {"heads": HEADS, "lrs": [1e-3, 1e-1], "figure_images": 2},
    }  # fmt: skip
    for section, fields in sections.items():
        values[section] = {**values[section], **fields}
    return from_dict(ProbeConfig, values)


def tiny_backbone(tiny_vit, **kwargs) -> FrozenBackbone:
    torch.manual_seed(0)
    return FrozenBackbone(tiny_vit(pool="default", **kwargs))


def test_one_backbone_forward_per_batch_feeds_every_head_and_lr(tiny_vit):
    backbone = tiny_backbone(tiny_vit)
    grid = build_grid(backbone, HEADS, [1e-3, 1e-2], num_classes=3, img_size=32)
    assert len(grid.heads) == 6 and backbone.calls == 0
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    heads_before = [p.clone() for p in grid.heads.parameters()]
    images, labels = torch.randn(5 * 4, 3, 32, 32), torch.randint(0, 3, (20,))

    def batches(epoch, start_update):
        return [(images[i : i + 4], labels[i : i + 4], 0) for i in range(4 * start_update, 20, 4)]

    fit_grid(grid, build_optimizer(grid, batch_size=4), batches, 2, 5, progress=False)
    assert backbone.calls == 10  # 2 epochs x 5 batches, whatever the number of heads x lrs
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())
    assert all(not torch.equal(a, b) for a, b in zip(heads_before, grid.heads.parameters(), strict=True))


def test_each_head_gets_gradients_and_the_backbone_none(tiny_vit):
    grid = build_grid(tiny_backbone(tiny_vit), HEADS, [1e-3, 1e-2], num_classes=3, img_size=32, with_cls=True)
    grid.train()
    assert not grid.backbone.model.training  # frozen: eval mode whatever the grid's mode
    loss, count = grid_step(torch.device("cpu"))(grid, torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0]), 1.0)
    loss.backward()
    assert count == 4
    for head in grid.heads:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.fc.parameters()), head.name
        if head.pool is not None:
            assert any(p.grad is not None for p in head.pool.parameters()) or not list(head.pool.parameters())
    assert all(p.grad is None and not p.requires_grad for p in grid.backbone.parameters())


def test_the_sum_of_losses_trains_each_head_as_alone(tiny_vit):
    # each head's gradient is that of its own loss: the grid's update of a head equals that head's own update
    grid = build_grid(tiny_backbone(tiny_vit), ["simpool", "gap"], [1e-2], num_classes=3, img_size=32)
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    loss, _ = grid_step(torch.device("cpu"))(grid, images, labels, 1.0)
    loss.backward()
    tokens = grid.tokens(images)
    alone = torch.nn.functional.cross_entropy(grid.heads[0](tokens), labels)
    grads = torch.autograd.grad(alone, list(grid.heads[0].parameters()))
    for param, grad in zip(grid.heads[0].parameters(), grads, strict=True):
        torch.testing.assert_close(param.grad, grad)


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


def test_holdout_split_is_seeded_disjoint_and_complete():
    train, held = split_holdout(50, 0.1, seed=3)
    assert len(held) == 5 and len(train) == 45 and not set(train) & set(held)
    assert sorted([*train, *held]) == list(range(50))
    assert np.array_equal(split_holdout(50, 0.1, seed=3)[1], held)
    assert not np.array_equal(split_holdout(50, 0.1, seed=4)[1], held)


def test_cache_gives_the_uncached_head_outputs(tiny_vit, tmp_path):
    grid = build_grid(tiny_backbone(tiny_vit), HEADS, [1e-3], num_classes=3, img_size=32, with_cls=True).eval()
    images, labels = torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2])
    batches = [(np.arange(0, 4), images[:4], labels[:4]), (np.arange(4, 6), images[4:], labels[4:])]
    key = {"backbone": "tiny"}
    cache = write_cache(tmp_path / "tokens.f16", key, 6, batches, grid.backbone)
    assert (tmp_path / "tokens.f16").stat().st_size == 6 * 17 * 32 * 2  # N x tokens x dim x float16
    tokens, cached_labels = cache[[5, 0, 3]]
    assert tokens.dtype == torch.float16 and torch.equal(cached_labels, labels[[5, 0, 3]])
    with torch.no_grad():
        torch.testing.assert_close(grid(tokens), grid(images[[5, 0, 3]]), atol=2e-3, rtol=2e-3)
    assert open_cache(tmp_path / "tokens.f16", key) is not None
    assert open_cache(tmp_path / "tokens.f16", {"backbone": "another"}) is None  # made from something else
    assert not list(tmp_path.glob("*.partial"))


def test_cache_key_follows_the_checkpoint_content_and_the_image_list(tmp_path):
    class Listing:  # what cache_key reads of an ImageFolder
        def __init__(self, samples):
            self.samples = samples

        def __len__(self):
            return len(self.samples)

    checkpoint = tmp_path / "weights.safetensors"
    checkpoint.write_bytes(b"first weights")
    config = config_of(tmp_path / "data", tmp_path / "run", model={"checkpoint": str(checkpoint)})
    images = Listing([("a/0.png", 0), ("b/1.png", 1)])
    key = cache_key(config, images)
    assert cache_key(config, images) == key
    checkpoint.write_bytes(b"other weights")  # replaced in place: same path, another backbone
    assert cache_key(config, images) != key
    checkpoint.write_bytes(b"first weights")
    assert cache_key(config, images) == key
    assert cache_key(config, Listing([("a/0.png", 0), ("b/1.png", 0)])) != key  # a label changed
    assert cache_key(config, Listing([("a/0.png", 0), ("b/2.png", 1)])) != key  # an image changed


def test_end_to_end_selection_scores_and_figures(bench, tmp_path):
    result = probe(config_of(bench / "dataset", tmp_path / "run"))
    run = Path(result["run_dir"])
    assert {"results.json", "probe.png", "attention.png", "last.pt", "config.yaml"} <= {p.name for p in run.iterdir()}
    assert len(result["entries"]) == 6 and [h["head"] for h in result["heads"]] == HEADS
    held = max(result["heads"], key=lambda h: h["holdout_top1"])
    assert result["selected"]["head"] == held["head"] and result["selected"]["lr"] == held["lr"]
    assert result["num_holdout"] == 4 and result["num_test"] == 12
    for head in result["heads"]:
        assert 0 <= head["MaxBoxAccV2"] <= 100 and 0 <= head["mask_mass"] <= 1
        assert head["params"] > 0 and head["gflops"] > 0
    gap = next(h for h in result["heads"] if h["head"] == "gap")
    assert gap["mask_mass"] == pytest.approx(gap["uniform_mask_mass"], abs=1e-6)  # GAP's map is uniform


def test_selection_never_reads_the_test_labels(bench, tmp_path):
    shuffled = tmp_path / "shuffled"
    shutil.copytree(bench / "dataset", shuffled / "dataset")
    images = sorted((shuffled / "dataset" / "test").rglob("*.png"))
    classes = sorted(p.name for p in (shuffled / "dataset" / "train").iterdir())
    rng = np.random.default_rng(0)
    for image in images:  # every test image moved to a random class folder: its label shuffled
        target = shuffled / "dataset" / "test" / classes[rng.integers(len(classes))] / f"moved_{image.name}"
        target.parent.mkdir(exist_ok=True)
        image.rename(target)
    for folder in (shuffled / "dataset" / "test").iterdir():
        if not any(folder.iterdir()):
            folder.rmdir()
    common = dict(probe={"heads": ["linear", "gap"], "figure_images": 0})
    plain = probe(config_of(bench / "dataset", tmp_path / "plain", **common))
    moved = probe(config_of(shuffled / "dataset", tmp_path / "moved", **common))
    assert [e["holdout_top1"] for e in plain["entries"]] == [e["holdout_top1"] for e in moved["entries"]]
    assert (plain["selected"]["head"], plain["selected"]["lr"]) == (moved["selected"]["head"], moved["selected"]["lr"])


def test_resume_gives_the_uninterrupted_result(bench, tmp_path):
    common = dict(probe={"heads": ["linear", "simpool"], "figure_images": 0, "cache": True})
    straight = probe(config_of(bench / "dataset", tmp_path / "straight", **common))
    stopped = probe(config_of(bench / "dataset", tmp_path / "stopped", train={"max_updates": 2}, **common))
    assert stopped["finished"] is False
    resumed = probe(config_of(bench / "dataset", tmp_path / "stopped", **common))
    assert resumed["finished"] is True
    for key in ("entries", "selected"):
        assert resumed[key] == straight[key]
    heads = [torch.load(Path(r["run_dir"]) / "last.pt", weights_only=True)["heads"] for r in (straight, resumed)]
    assert all(torch.equal(heads[0][k], heads[1][k]) for k in heads[0])


def test_mask_mass_and_box_accuracy_by_hand():
    # 2x2 maps on 2x2 masks: all mass on the object -> 1; half of a uniform map's mass -> 0.5; mean 0.75
    maps = np.array([[[1.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]])
    masks = np.array([[[1, 0], [0, 0]], [[1, 1], [0, 0]]], dtype=bool)
    assert mask_mass(maps, masks) == pytest.approx(0.75)
    # a map that is the object's box exactly finds the box at every IoU level: 100
    box_map = np.zeros((1, 8, 8))
    box_map[0, 2:6, 2:6] = 1.0
    scores = attention_quality(box_map, [np.array([[2, 2, 6, 6]])], [(8, 8)], box_map.astype(bool))
    assert scores["MaxBoxAccV2"] == pytest.approx(100.0) and scores["mask_mass"] == pytest.approx(1.0, abs=0.05)
    assert scores["uniform_mask_mass"] == pytest.approx(16 / 64)


def test_lars_scales_the_base_lr_and_adapts_matrices_only(tiny_vit):
    grid = build_grid(tiny_backbone(tiny_vit), ["linear", "simpool"], [0.1, 0.2], num_classes=3, img_size=32)
    optimizer = build_optimizer(grid, "lars", batch_size=512)
    assert type(optimizer).__name__ == "Lars" and len(optimizer.param_groups) == 8  # (matrices, vectors) x 4
    assert [g["lr"] for g in optimizer.param_groups[:4]] == pytest.approx([0.2, 0.2, 0.4, 0.4])  # x 512 / 256
    assert all(p.ndim > 1 for g in optimizer.param_groups[::2] for p in g["params"])
    assert [g["always_adapt"] for g in optimizer.param_groups[:2]] == [True, False]
    with pytest.raises(ValueError, match="valid: adamw, lars"):
        build_optimizer(grid, "sgd")


def test_a_cnn_feature_map_gives_one_token_per_location(tiny_resnet):
    backbone = FrozenBackbone(tiny_resnet(pool="default", num_classes=0))
    tokens = backbone(torch.randn(2, 3, 64, 64))
    assert tokens.shape == (2, 4, 512) and backbone.grid == (2, 2) and backbone.num_prefix_tokens == 0
    grid = build_grid(backbone, ["linear", "simpool"], [1e-3], num_classes=3, img_size=64)
    assert grid(torch.randn(2, 3, 64, 64)).shape == (2, 2, 3)
