"""The probe tests' bench export, their tiny config, and each head's attention scores and the baselines'
recomputed from a run folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import transforms

from simpool.data.bench import BenchConfig, SimPoolBench
from simpool.data.folders import load_rgb
from simpool.data.wsol import read_wsol_metadata
from simpool.evaluate.attention_quality import attention_quality
from simpool.evaluate.baselines import box_prior, centre, mean_map, uniform
from simpool.evaluate.pixel_ap import pxap
from simpool.models.attention import attention_maps
from simpool.train.config import from_dict, load_config
from simpool.train.probe.config import ProbeConfig
from simpool.train.probe.grid import FrozenBackbone, ProbeHead
from simpool.train.probe.run import frozen_backbone
from tests.conftest import TINY_VIT

HEADS = ["linear", "simpool", "gap"]
SCORES = ("MaxBoxAccV2", "BoxAcc@50", "PxAP", "mask_mass", "uniform_mask_mass")


@pytest.fixture(scope="session")
def probe_bench(tmp_path_factory) -> Path:
    """A wsol bench export (40 training, 12 test images) whose ``dataset/`` is the probe's ``--data``."""
    from simpool.data.bench_export import export

    root = tmp_path_factory.mktemp("probe_bench")
    export(root, "wsol", "original", split="train", num_images=40, progress=False)
    export(root, "wsol", "original", split="test", num_images=12, progress=False)
    return root


def config_of(data: Path, out: Path, **sections) -> ProbeConfig:
    """A tiny CPU probe of ``HEADS`` x 2 lrs, one epoch of batch 8, on ``data`` (test split ``test``)."""
    values = {
        "model": {"name": "vit_tiny_patch16_224", "kwargs": dict(TINY_VIT)},
        "data": {"root": str(data), "val_split": "test", "img_size": 32, "num_workers": 0},
        "train": {
            "epochs": 1,
            "batch_size": 8,
            "device": "cpu",
            "num_threads": 1,
            "output": str(out.parent),
            "name": out.name,
            "progress": False,
            "log_every": 1,
        },
        "probe": {"heads": HEADS, "lrs": [1e-3, 1e-1], "figure_images": 2},
    }
    for section, fields in sections.items():
        values[section] = {**values[section], **fields}
    return from_dict(ProbeConfig, values)


def tiny_backbone(tiny_vit, **kwargs) -> FrozenBackbone:
    torch.manual_seed(0)
    return FrozenBackbone(tiny_vit(pool="default", **kwargs))


def rendered_masks(root: Path, image_ids: list[str]) -> np.ndarray:
    """The bench's own masks ``(N, S, S)`` of exported images ``<split>/<class>/<index>.png``, rendered again from
    the export's ``bench.json`` (not read from the exported mask files)."""
    settings = json.loads((root.parent / "bench.json").read_text())
    parts = {part["split"]: part for part in settings["parts"]}
    benches = {
        split: SimPoolBench(split, part["variant"], BenchConfig(**settings["config"]), num_images=part["num_images"])
        for split, part in parts.items()
    }
    return np.stack([benches[Path(i).parts[0]].render(int(Path(i).stem))[1] for i in image_ids])


@torch.no_grad()
def maps_by_hand(run_dir: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Each head's maps ``(N, h, w)`` recomputed from the run folder: the run's backbone (the same seed, so the same
    weights), each head at its selected lr with its trained weights from ``last.pt``, on the test images with a
    box resized whole to the input size; ``linear``'s map is the backbone's CLS attention."""
    config = load_config(ProbeConfig, run_dir / "config.yaml")
    result = json.loads((run_dir / "results.json").read_text())
    torch.manual_seed(config.train.seed)
    backbone = frozen_backbone(config, torch.device("cpu"))
    trained = torch.load(run_dir / "last.pt", weights_only=True)["heads"]
    root, img = Path(config.data.root), config.data.img_size
    metadata = read_wsol_metadata(root.parent / "metadata" / config.data.val_split)
    ids = [i for i in metadata.image_ids if i in metadata.boxes]
    whole = transforms.Compose(  # the whole image (no crop), as wsolevaluation scores it
        [transforms.Resize((img, img)), transforms.ToTensor(), transforms.Normalize(config.data.mean, config.data.std)]
    )
    images = torch.stack([whole(load_rgb(root / i)) for i in ids])  # (N, 3, img, img)
    tokens = backbone(images)  # (N, 1 + h * w, C)
    h, w = backbone.grid
    maps = {}
    for head in result["heads"]:
        index, name = head["index"], head["head"]
        state = {key.split(".", 1)[1]: value for key, value in trained.items() if key.split(".")[0] == str(index)}
        probe = ProbeHead(
            name, tokens.shape[-1], len(state["fc.bias"]), backbone.num_prefix_tokens, config.probe.with_cls
        )
        probe.load_state_dict(state)
        if name == "linear":
            values = attention_maps(backbone.model, images, source="cls")  # (N, h, w)
        else:
            values = probe.eval().attention(tokens)  # (N, h * w)
        maps[name] = values.reshape(len(ids), h, w).float().numpy()
    return ids, maps


def scores_by_hand(run_dir: Path) -> dict[str, dict]:
    """Each head's attention scores recomputed from its maps (:func:`maps_by_hand`), the test boxes and the bench's
    own masks."""
    config = load_config(ProbeConfig, run_dir / "config.yaml")
    root = Path(config.data.root)
    metadata = read_wsol_metadata(root.parent / "metadata" / config.data.val_split)
    ids, maps = maps_by_hand(run_dir)
    boxes, sizes, masks = (
        [metadata.boxes[i] for i in ids],
        [metadata.image_sizes[i] for i in ids],
        rendered_masks(root, ids),
    )
    return {name: attention_quality(value, boxes, sizes, masks) for name, value in maps.items()}


def baselines_by_hand(run_dir: Path) -> dict[str, dict]:
    """The baselines' scores recomputed from the saved maps (``attention_maps.npz``): near-uniform noise of the
    run's seed, the centred Gaussian, the mean of the training split's (rendered) masks on the token grid, each
    head's mean map; each scored against the test boxes and the (rendered) masks, its PxAP by :func:`pxap`."""
    config = load_config(ProbeConfig, run_dir / "config.yaml")
    root = Path(config.data.root)
    saved = np.load(run_dir / "attention_maps.npz")
    ids = [str(i) for i in saved["image_ids"]]
    test = read_wsol_metadata(root.parent / "metadata" / config.data.val_split)
    train = read_wsol_metadata(root.parent / "metadata" / config.data.train_split)
    boxes, sizes, masks = [test.boxes[i] for i in ids], [test.image_sizes[i] for i in ids], rendered_masks(root, ids)
    heads = [name for name in saved.files if name != "image_ids"]
    count, grid = len(ids), saved[heads[0]].shape[1:]
    maps = {
        "uniform": uniform(count, grid, config.train.seed),
        "centre": centre(count, grid),
        "box_prior": box_prior(count, grid, masks=rendered_masks(root, train.image_ids).mean(0)[None]),
        **{f"mean_map/{name}": mean_map(saved[name]) for name in heads},
    }
    scores = {}
    for name, value in maps.items():
        ranked = bool(np.ptp(value.reshape(len(value), -1), axis=1).any())  # a constant map (gap's mean) has no PxAP
        scores[name] = {**attention_quality(value, boxes, sizes, masks), "PxAP": pxap(value, masks) if ranked else None}
    return scores


def reported_scores(result: dict) -> dict[str, dict]:
    """The attention scores ``results.json`` gives each head."""
    return {head["head"]: {key: head[key] for key in SCORES} for head in result["heads"]}
