"""Attention quality of DINO teachers trained on the SimPool bench (docs/RESULTS.md, DINO section).

Usage: python docs/examples/dino_bench_attention.py outputs/dino_runs/cls outputs/dino_runs/simpool
Each run folder holds the `teacher.safetensors` that `simpool train-dino` exports. The maps are taken
at the training resolution (64 px): the pool's attention for SimPool, the mean CLS attention of the
last block for the baseline; then MaxBoxAccV2, CorLoc (DINO-seg, 60% of the mass) and the attention
mass inside the object masks on 1,000 test images of the bench (`original` variant).
"""

import sys
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms.functional import normalize

from simpool import attention_maps, create_model
from simpool.data import BenchConfig, SimPoolBench
from simpool.evaluate.attention_quality import attention_quality
from simpool.models import load_checkpoint
from simpool.train.config import load_config
from simpool.train.dino.config import DinoConfig

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # the DINO recipe's normalisation (ImageNet's)

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
    data = SimPoolBench("test", "original", BenchConfig(image_size=config.model.kwargs["img_size"]), num_images=1000)
    images, labels, boxes, masks = data.batch(np.arange(len(data)))
    x = normalize(images.float() / 255.0, MEAN, STD)  # (N, 3, S, S)
    maps = torch.cat([attention_maps(model, x[i : i + 250]) for i in range(0, len(x), 250)]).numpy()  # (N, h, w)
    size = (images.shape[-1], images.shape[-2])  # (W, H)
    boxes = [box[None] for box in np.asarray(boxes)]  # one (1, 4) box per image
    patch = config.model.kwargs["patch_size"]
    metrics = attention_quality(maps, boxes, [size] * len(boxes), np.asarray(masks), patch_size=patch)
    print(run.name, {k: round(v, 3) for k, v in metrics.items()})
