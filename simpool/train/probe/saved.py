"""A trained probe head as one small safetensors file with its config: ``heads/<label>.safetensors`` of a run.

The file holds the head's tensors (``pool.*``, ``norm.*``, ``fc.*``) and, in the safetensors metadata (strings),
``"config"``: JSON of everything needed to build it again and feed it: the head's name and options, its input
width, class count and prefix tokens, the setting it was selected at, the class names, and the backbone it reads
(model, pool, checkpoint, blocks) and how its images are read (the data config: size, crop, interpolation,
normalisation). :func:`load_head` returns the head ready to use on
the tokens of that backbone (:class:`~.grid.FrozenBackbone`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..config import from_dict
from .config import ProbeConfig, grid_options
from .grid import Entry, ProbeHead

FORMAT = "simpool-probe-head/1"


def head_config(config: ProbeConfig, head: ProbeHead, entry: Entry, classes: list[str]) -> dict:
    """What :func:`load_head` needs to build ``head`` and feed it, as a JSON-able dict."""
    fixed, _ = grid_options(config.probe.head_kwargs.get(entry.head, {}))
    return {
        "format": FORMAT,
        "head": entry.head,
        "pool": head.name,
        "label": entry.label,
        "kwargs": {**fixed, **dict(entry.options)},
        "dim": head.dim,
        "num_classes": head.fc.out_features,
        "num_prefix": head.num_prefix,
        "with_cls": head.with_cls,
        "batch_norm": not isinstance(head.norm, torch.nn.Identity),
        "setting": entry.setting(),
        "classes": list(classes),
        "backbone": dataclasses.asdict(config.model),
        "data": dataclasses.asdict(config.data),  # size, crop, interpolation, normalisation of its images
        "blocks": config.probe.blocks,
        "block_indices": list(config.probe.block_indices),
        "blocks_mode": config.probe.blocks_mode,
    }


def probe_config_of(config: dict) -> ProbeConfig:
    """The probe config a saved head's backbone and images are built from (:func:`~.run.frozen_backbone`,
    :func:`simpool.data.transforms.build_transforms`): its backbone, data and blocks."""
    blocks = {key: config[key] for key in ("blocks", "block_indices", "blocks_mode")}
    return from_dict(ProbeConfig, {"model": config["backbone"], "data": config["data"], "probe": blocks})


def save_head(path: str | os.PathLike, head: ProbeHead, config: dict) -> Path:
    """Write ``head``'s tensors and ``config`` (:func:`head_config`) to ``path`` (a ``.safetensors`` file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu().contiguous() for key, value in head.state_dict().items()}
    save_file(state, str(path), metadata={"config": json.dumps(config)})
    return path


def load_head(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[ProbeHead, dict]:
    """The head saved at ``path`` (in eval mode, on ``device``) and its config.

    Raises:
        ValueError: the file is not a probe head (no config of this format), or its tensors do not fit the head.
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as file:
        raw = (file.metadata() or {}).get("config")
    config = json.loads(raw) if raw else {}
    if config.get("format") != FORMAT:
        raise ValueError(f"{path} is not a probe head saved by simpool probe (no {FORMAT!r} config)")
    args = (config["pool"], config["dim"], config["num_classes"], config["num_prefix"], config["with_cls"])
    head = ProbeHead(*args, batch_norm=config["batch_norm"], **config["kwargs"])
    try:
        head.load_state_dict(load_file(str(path)))
    except RuntimeError as error:
        raise ValueError(f"{path}: its tensors do not fit a {config['label']} head ({error})") from None
    return head.eval().to(device), config


def save_heads(folder: str | os.PathLike, config: ProbeConfig, grid, best: dict[str, int], classes: list[str]):
    """Each head at its selected setting (``best``: head name -> entry index) as ``<folder>/<label>.safetensors``;
    returns ``{head name: path}``."""
    paths = {}
    for name, index in best.items():
        head, entry = grid.heads[index], grid.entries[index]
        file = Path(folder) / f"{entry.label}.safetensors"
        paths[name] = str(save_head(file, head, head_config(config, head, entry, classes)))
    return paths


__all__ = ["FORMAT", "head_config", "load_head", "probe_config_of", "save_head", "save_heads"]
