"""The argument groups every command shares: one flag for one concept, in every command.

``--data`` (dataset root), ``--out`` (output folder or file), ``--model``, ``--pool``, ``--pool-kwargs``,
``--model-kwargs`` (``key=value`` lists, one parser: :func:`simpool.utils.parse_kv`), ``--checkpoint`` (one
loading path: :func:`simpool.models.loading.load_model`, strict), ``--img-size``, ``--batch-size``,
``--workers``, ``--device``, ``--seed``, ``--no-progress``. timm's words where timm has one.
"""

from __future__ import annotations

import argparse
import os

import torch
from torch import nn

from ..models.loading import load_model
from ..utils import default_device, parse_kv


def add_data(parser: argparse.ArgumentParser, required: bool = True, help: str = "dataset root folder") -> None:
    parser.add_argument("--data", required=required, default=None, help=help)


def add_out(
    parser: argparse.ArgumentParser, required: bool = False, default: str | None = None, help: str = ""
) -> None:
    parser.add_argument("--out", required=required, default=default, help=help or "output folder or file")


def add_model(
    parser: argparse.ArgumentParser,
    required: bool = True,
    pool: str = "simpool",
    num_classes: int | None = None,
    checkpoint: bool = True,
) -> None:
    """``--model``, ``--pool``, ``--pool-kwargs``, ``--model-kwargs``, ``--checkpoint``, ``--checkpoint-key``,
    ``--num-classes``: what :func:`model_from_args` builds."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", required=required, help="timm model name, e.g. vit_small_patch16_224, resnet50")
    group.add_argument("--pool", default=pool, help="'default' (timm's own: CLS token / GAP) or a simpool pool name")
    group.add_argument("--pool-kwargs", nargs="*", default=[], metavar="KEY=VALUE", help="pool arguments, e.g. gamma=2")
    group.add_argument(
        "--model-kwargs", nargs="*", default=[], metavar="KEY=VALUE", help="timm arguments, e.g. drop_path_rate=0.1"
    )
    if checkpoint:
        group.add_argument("--checkpoint", default=None, help="weights: ours, an official release or a timm state dict")
        group.add_argument(
            "--checkpoint-key", default=None, help="entry of a checkpoint dict (teacher, state_dict_ema)"
        )
    group.add_argument(
        "--num-classes", type=int, default=num_classes, help="classifier outputs; unset: the checkpoint's (0: none)"
    )


def add_runtime(
    parser: argparse.ArgumentParser,
    batch_size: int | None = 64,
    workers: int | None = None,
    seed: bool = True,
    loader: bool = True,
) -> None:
    """``--batch-size``, ``--workers`` (default: up to 4, at most the CPU count), ``--device``, ``--seed``,
    ``--no-progress``. ``batch_size=None`` leaves out ``--batch-size``, ``loader=False`` ``--workers`` (a
    command that reads images one at a time)."""
    group = parser.add_argument_group("runtime")
    if batch_size is not None:
        group.add_argument("--batch-size", type=int, default=batch_size, help="images per forward pass")
    if loader:
        default_workers = workers if workers is not None else min(4, os.cpu_count() or 1)
        group.add_argument("--workers", type=int, default=default_workers, help="data-loading processes")
    group.add_argument("--device", default=None, help="cuda, cuda:1, cpu ...; unset: cuda when available")
    if seed:
        group.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    group.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_img_size(parser: argparse.ArgumentParser, default: int | None = 224, help: str = "") -> None:
    parser.add_argument("--img-size", type=int, default=default, help=help or "input image side in pixels")


def device_of(args: argparse.Namespace) -> torch.device:
    """The device named by ``--device``, else CUDA when available: chosen once per command."""
    return torch.device(args.device) if getattr(args, "device", None) else default_device()


def model_from_args(args: argparse.Namespace, device: torch.device | None = None) -> nn.Module:
    """The model of :func:`add_model`'s options, its checkpoint loaded strictly, in eval mode on the device."""
    model = load_model(
        args.model,
        pool=args.pool,
        pool_kwargs=parse_kv(args.pool_kwargs),
        model_kwargs=parse_kv(args.model_kwargs),
        checkpoint=getattr(args, "checkpoint", None),
        checkpoint_key=getattr(args, "checkpoint_key", None),
        num_classes=args.num_classes,
    )
    return model.eval().to(device or device_of(args))


def check_writable(path: str | os.PathLike | None, option: str = "--out") -> None:
    """Refuse before any work an ``option`` path that cannot be written (its first existing parent is read-only)."""
    if path is None:
        return
    parent = os.path.abspath(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.access(parent if os.path.isdir(parent) else os.path.dirname(parent), os.W_OK):
        raise PermissionError(f"{option} {path}: {parent} is not writable")


def add_seed(parser: argparse.ArgumentParser, default: int = 0, help: str = "") -> None:
    """``--seed`` alone, for a command without a device or a loader (``add_runtime`` has it too)."""
    parser.add_argument("--seed", type=int, default=default, help=help or "seed of every random choice")


def add_no_progress(parser: argparse.ArgumentParser) -> None:
    """``--no-progress`` alone, for a command without a device or a loader (``add_runtime`` has it too)."""
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
