"""Attention monitor: MaxBoxAccV2 of a model's attention maps on held-out images with boxes.

Logged beside accuracy every ``monitor.every`` epochs: the paper's localization columns for every run.
Held-out images come from the rendered SimPool bench (``monitor.source: bench``; its test split, where
boxes are exact) or from any wsolevaluation-format folder (``monitor.source: wsol``: ``metadata`` holds
``image_ids.txt``, ``image_sizes.txt`` and ``localization.txt``; image paths are relative to ``images``).
Images are resized to the training resolution without cropping and normalised; maps come from
``simpool.attention_maps(model, images)`` (SimPool's ``a``, or the CLS attention of a baseline ViT),
upsampled to 224 x 224 and scored by ``simpool.evaluate.localization.max_box_acc_v2`` (wsolevaluation's
protocol; boxes stay in original pixel coordinates with the original image sizes).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ...data import wsol
from ...data.folders import load_rgb
from ...models import attention_maps
from ..distributed import unwrap

SCORE_SIZE = 224  # wsolevaluation scores 224 x 224 maps


def read_wsol_metadata(metadata: str | Path) -> tuple[list[str], dict[str, np.ndarray], dict[str, tuple[int, int]]]:
    """Image ids in file order, boxes ``(n_i, 4)`` ``(x0, y0, x1, y1)`` and sizes ``(W, H)`` per id of a
    wsolevaluation metadata folder (read by ``simpool.data.wsol``)."""
    meta = wsol.read_wsol_metadata(metadata)
    boxes = {k: np.asarray(v, dtype=np.float64).reshape(-1, 4) for k, v in meta.boxes.items()}
    return meta.image_ids, boxes, meta.image_sizes


class AttentionMonitor:
    """Held-out images with boxes, loaded once; ``monitor(model)`` returns MaxBoxAccV2 and friends.

    Args:
        source: ``"bench"`` (rendered test split) or ``"wsol"`` (a wsolevaluation folder).
        img_size: the model's input side; images are resized to it without cropping.
        mean, std: the normalisation of training.
        max_images: use the first ``max_images`` (0: all; the bench's test split has 10,000).
        metadata, images: the wsolevaluation metadata folder and image root (``source="wsol"``).
        metric: ``(score_maps (N, 224, 224), boxes, sizes) -> dict``; default ``max_box_acc_v2``.
    """

    def __init__(
        self,
        source: str,
        img_size: int,
        mean,
        std,
        max_images: int = 0,
        metadata: str = "",
        images: str = "",
        metric: Callable | None = None,
    ):
        if metric is None:
            from ...evaluate.localization import max_box_acc_v2 as metric
        self.metric = metric
        loaders = {"bench": self._bench, "wsol": self._wsol}
        if source not in loaders:
            raise ValueError(f"monitor.source must be one of {sorted(loaders)}, not {source!r}")
        pictures, self.boxes, self.sizes = loaders[source](img_size, max_images, metadata, images)
        mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        std = torch.tensor(std, dtype=torch.float32)[:, None, None]
        self.images = (pictures - mean) / std  # (N, 3, S, S)

    @staticmethod
    def _bench(img_size: int, max_images: int, metadata: str, images: str):
        from ...data.bench import BenchConfig, SimPoolBench

        bench = SimPoolBench("test", config=BenchConfig(image_size=img_size), num_images=max_images or None)
        rendered = [bench.render(i) for i in range(len(bench))]
        pictures = (
            torch.from_numpy(np.stack([r[0] for r in rendered])).permute(0, 3, 1, 2).float() / 255
        )  # (N, 3, S, S)
        boxes = [r[2].astype(np.float64).reshape(1, 4) for r in rendered]
        return pictures, boxes, [(img_size, img_size)] * len(rendered)

    @staticmethod
    def _wsol(img_size: int, max_images: int, metadata: str, images: str):
        ids, boxes, sizes = read_wsol_metadata(metadata)
        ids = ids[: max_images or len(ids)]
        pictures = []
        for image_id in ids:
            resized = load_rgb(Path(images) / image_id).resize((img_size, img_size), Image.BILINEAR)
            pictures.append(torch.from_numpy(np.array(resized)).permute(2, 0, 1))  # (3, S, S)
        return torch.stack(pictures).float() / 255, [boxes[i] for i in ids], [sizes[i] for i in ids]

    @torch.no_grad()
    def __call__(self, model: nn.Module, device: torch.device, batch_size: int = 64) -> dict:
        model = unwrap(model)
        was_training = model.training
        model.eval()
        maps = []
        for start in range(0, len(self.images), batch_size):
            images = self.images[start : start + batch_size].to(device)
            grid = attention_maps(model, images).float()  # (B, h, w)
            maps.append(
                F.interpolate(grid[:, None], size=(SCORE_SIZE, SCORE_SIZE), mode="bilinear", align_corners=False)[
                    :, 0
                ].cpu()
            )  # (B, 224, 224)
        model.train(was_training)
        return self.metric(torch.cat(maps).numpy(), self.boxes, self.sizes)
