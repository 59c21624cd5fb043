"""``simpool probe-predict``: a saved probe head on its backbone: each image's top classes and the head's attention.

The head is a file of ``simpool probe`` (``RUN/heads/<label>.safetensors``): its config names the backbone (model,
pool, checkpoint, blocks), the data config (size, crop, interpolation, normalisation) and class names, so nothing
else is needed. The backbone is built as the probe built it (:func:`~simpool.train.probe.run.frozen_backbone`) and
images are read as its test split was (:func:`~simpool.data.transforms.build_transforms`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLE = """example:
  simpool probe-predict runs/probe/heads/simpool.safetensors cat.jpg dog.jpg --out predictions.png
  simpool probe-predict runs/probe/heads/ep.safetensors images/ --checkpoint backbone.safetensors --top-k 3
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("head", help="a head saved by simpool probe: RUN/heads/<label>.safetensors")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files, or folders of them")
    parser.add_argument(
        "--checkpoint", default=None, help="the backbone's weights, when not where the probe run read them"
    )
    parser.add_argument("--top-k", type=int, default=5, help="classes printed per image")
    parser.add_argument("--out", default=None, help="a PNG: each image and the head's attention over it")
    parser.add_argument("--device", default="cpu", help="torch device")


def read_images(files: list[Path], data):
    """``(B, 3, S, S)`` as the probe read its test split (``data``'s evaluation transform:
    :func:`simpool.data.transforms.build_transforms`), and the same pictures ``(S, S, 3)`` in [0, 1]."""
    import numpy as np
    import torch

    from ..data.folders import load_rgb
    from ..data.transforms import build_transforms

    _, transform = build_transforms(data)
    batch = torch.stack([transform(load_rgb(path)) for path in files])  # (B, 3, S, S)
    # per-channel statistics (3,) -> (3, 1, 1), to broadcast over an image (3, S, S)
    mean, std = torch.tensor(data.mean).view(3, 1, 1), torch.tensor(data.std).view(3, 1, 1)
    pictures = [np.clip((image * std + mean).permute(1, 2, 0).numpy(), 0, 1) for image in batch]  # (S, S, 3)
    return batch, pictures


def run(args: argparse.Namespace) -> int:
    import torch

    from ..train.probe.run import frozen_backbone
    from ..train.probe.saved import load_head, probe_config_of

    if args.top_k < 1:
        raise ValueError(f"--top-k {args.top_k}: give 1 or more")
    if args.out is not None and Path(args.out).suffix.lower() != ".png":
        raise ValueError(f"--out {args.out}: give a .png file")
    head, config = load_head(args.head, args.device)
    probe = probe_config_of(config)  # the backbone and images as the probe run built them
    probe.model.checkpoint = args.checkpoint or probe.model.checkpoint
    backbone = frozen_backbone(probe, torch.device(args.device))
    from ..visualize.report import find_images

    files = find_images(args.images)
    batch, pictures = read_images(files, probe.data)
    with torch.no_grad():
        tokens = backbone(batch.to(args.device))  # (B, T, C)
        probabilities = head(tokens).softmax(dim=-1).cpu()  # (B, classes)
    classes = config["classes"]
    top = probabilities.topk(min(args.top_k, probabilities.shape[1]), dim=-1)
    for path, values, indices in zip(files, top.values, top.indices, strict=True):
        ranked = zip(values.tolist(), indices.tolist(), strict=True)
        print(f"{path}: " + ", ".join(f"{classes[i]} {p:.3f}" for p, i in ranked))
    if args.out is not None:
        draw(args.out, head, tokens, backbone.grid, pictures, config["label"])
    return 0


def draw(out: str, head, tokens, grid: tuple[int, int], pictures: list, label: str) -> None:
    """The head's attention over each picture, as ``simpool probe``'s ``attention.png`` draws it."""
    from ..visualize.probe import attention_figure

    attention = head.attention(tokens)  # (B, N) or None (linear)
    if attention is None:
        raise ValueError(f"the {label} head has no attention to draw (a linear head); leave out --out")
    maps = attention.reshape(-1, *grid).cpu().numpy()  # (B, h, w)
    print(f"attention of {label} -> {attention_figure(pictures, {label: maps}, out)}")
