"""Attention quality of DINO teachers trained on the SimPool bench (docs/RESULTS.md, DINO section).

Usage: python docs/examples/dino_bench_attention.py outputs/dino_runs/cls outputs/dino_runs/simpool
Each run folder holds the `teacher.safetensors` that `simpool train-dino` exports. The maps are taken
at the training resolution (64 px): the pool's attention for SimPool, the mean CLS attention of the
last block for the baseline; then MaxBoxAccV2, CorLoc (DINO-seg, 60% of the mass), PxAP and the attention
mass inside the object masks on 1,000 test images of the bench (`original` variant). For a CLS model,
DINO-seg is also scored on each head of the last block: the best head (chosen on these test images, as the
paper picks DINO-seg's head) beside the mean over heads. Beside every score, the maps that ignore the image,
scored the same way: near-uniform noise, a centred Gaussian, the box prior (the mean mask of the first 2,000
training images, those the DINO runs trained on) and the model's own mean map.
"""

import sys
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms.functional import normalize

from simpool import attention_maps, create_model
from simpool.data import BenchConfig, SimPoolBench
from simpool.evaluate.attention_quality import attention_quality, baseline_scores, dino_seg_corloc, strongest_baseline
from simpool.models import load_checkpoint
from simpool.models.attention import cls_attention_all
from simpool.train.config import load_config
from simpool.train.dino.config import DinoConfig

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # the DINO recipe's normalisation (ImageNet's)
TEST_IMAGES, TRAIN_IMAGES, BATCH = 1000, 2000, 250
SHOWN = ("MaxBoxAccV2", "CorLoc", "PxAP", "mask_mass")


def rounded(scores: dict) -> dict:
    return {key: round(scores[key], 3) for key in SHOWN if key in scores}


@cache
def train_masks(size: int) -> np.ndarray:
    """The masks ``(M, S, S)`` of the bench's first training images: what the box prior averages."""
    train = SimPoolBench("train", "original", BenchConfig(image_size=size), num_images=TRAIN_IMAGES)
    return np.asarray(train.batch(np.arange(len(train)))[3])


def head_line(model, x: torch.Tensor, boxes, sizes, patch: int, mean_corloc: float) -> str:
    """DINO-seg's CorLoc on each head of the last block's CLS attention, the best head's and the mean map's."""
    heads = torch.cat([cls_attention_all(model, x[i : i + BATCH])[:, -1] for i in range(0, len(x), BATCH)])
    per_head = [dino_seg_corloc(heads[:, k].numpy(), boxes, sizes, patch) for k in range(heads.shape[1])]
    best = int(np.argmax(per_head))
    listed = ", ".join(f"{value:.1f}" for value in per_head)
    return (
        f"  DINO-seg CorLoc per head [{listed}]; best head {best}: {per_head[best]:.1f}; "
        f"mean over heads: {mean_corloc:.1f}"
    )


for run in map(Path, sys.argv[1:]):
    config = load_config(DinoConfig, run / "config.yaml", [])
    model = create_model(
        config.model.name,
        pool=config.model.pool,
        pool_kwargs=config.model.pool_kwargs,
        num_classes=0,
        **config.model.kwargs,
    ).eval()
    load_checkpoint(model, run / "teacher.safetensors")
    size, patch = config.model.kwargs["img_size"], config.model.kwargs["patch_size"]
    data = SimPoolBench("test", "original", BenchConfig(image_size=size), num_images=TEST_IMAGES)
    images, labels, boxes, masks = data.batch(np.arange(len(data)))
    x = normalize(images.float() / 255.0, MEAN, STD)  # (N, 3, S, S)
    maps = torch.cat([attention_maps(model, x[i : i + BATCH]) for i in range(0, len(x), BATCH)]).numpy()  # (N, h, w)
    sizes = [(images.shape[-1], images.shape[-2])] * len(images)  # (W, H) of each image
    boxes = [box[None] for box in np.asarray(boxes)]  # one (1, 4) box per image
    masks = np.asarray(masks)
    metrics = attention_quality(maps, boxes, sizes, masks, patch_size=patch)
    print(run.name, rounded(metrics), f"(uniform mask mass {metrics['uniform_mask_mass']:.3f})")
    if getattr(model, "has_class_token", False) and config.model.pool == "default":  # its map: the CLS attention
        print(head_line(model, x, boxes, sizes, patch, metrics["CorLoc"]))
    baselines = baseline_scores(
        maps.shape[1:], train_masks(size), boxes, sizes, masks, patch_size=patch, model_maps={run.name: maps}
    )
    for name, scores in baselines.items():
        print(f"  {name}: {rounded(scores)}")
    for metric in SHOWN[:3]:
        name, value = strongest_baseline(baselines, metric)
        print(f"  {metric}: {metrics[metric]:.1f}, the strongest image-independent baseline {name} {value:.1f}")
