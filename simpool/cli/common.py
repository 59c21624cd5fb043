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


POOL_AUTO = "auto"
POOL_HELP = (
    "'auto': the checkpoint's own pool when it has one (simpool or timm's), else 'default'; 'default': timm's own "
    "(CLS token / GAP); or a simpool pool name (simpool.list_pools())"
)


def resolve_pool(pool: str, checkpoint: str | os.PathLike | None) -> str:
    """The one ``--pool`` rule of every command: ``auto`` is the checkpoint's own pool (``load_model``'s
    ``pool="auto"`` reads it from the parameter names), or ``default`` (timm's own) without a checkpoint."""
    if pool != POOL_AUTO:
        return pool
    return POOL_AUTO if checkpoint else "default"


def add_model(
    parser: argparse.ArgumentParser,
    required: bool = True,
    pool: str = POOL_AUTO,
    num_classes: int | None = None,
    checkpoint: bool = True,
) -> None:
    """``--model``, ``--pool`` (:data:`POOL_HELP`, one default in every command: ``auto``), ``--pool-kwargs``,
    ``--model-kwargs``, ``--checkpoint``, ``--checkpoint-key``, ``--num-classes``: what :func:`model_from_args`
    builds. ``pool`` is kept for callers that still pass it; the default is ``auto`` whatever they pass."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", required=required, help="timm model name, e.g. vit_small_patch16_224, resnet50")
    group.add_argument("--pool", default=POOL_AUTO, help=POOL_HELP)
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
    """The device named by ``--device``, else CUDA when available: chosen once per command.

    Raises:
        ValueError: a name torch does not know, or a CUDA device on a machine without one (before any work).
    """
    name = getattr(args, "device", None)
    if not name:
        return default_device()
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a device; valid: cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine; valid: cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def model_from_args(args: argparse.Namespace, device: torch.device | None = None) -> nn.Module:
    """The model of :func:`add_model`'s options, its checkpoint loaded strictly, in eval mode on the device."""
    model = load_model(
        args.model,
        pool=resolve_pool(args.pool, getattr(args, "checkpoint", None)),
        pool_kwargs=parse_kv(args.pool_kwargs),
        model_kwargs=parse_kv(args.model_kwargs),
        checkpoint=getattr(args, "checkpoint", None),
        checkpoint_key=getattr(args, "checkpoint_key", None),
        num_classes=args.num_classes,
    )
    return model.eval().to(device or device_of(args))


def check_writable(path: str | os.PathLike | None, option: str = "--out", kind: str | None = None) -> None:
    """Refuse before any work an ``option`` path that cannot be written (its first existing parent is read-only),
    or, with ``kind`` ``"folder"`` or ``"file"``, one that exists as the other kind."""
    if path is None:
        return
    if kind == "folder" and os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"{option} {path} is a file: give a folder to write into")
    if kind == "file" and os.path.isdir(path):
        raise IsADirectoryError(f"{option} {path} is a folder: give a file name")
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


def check_option(option: str, value, interval: str | None = None, unique: bool = False) -> None:
    """Refuse before any work an option's value outside ``interval`` (``"[1, inf)"``, ``"(0, 1]"``; for a list,
    each item), or, with ``unique``, a list that gives a value twice; ``None`` (unset) passes.

    Raises:
        ValueError: ``"--threshold 1.5 is outside (0, 1]"``, ``"--lr gives 0.001 twice; give each value once"``.
    """
    from ..train.config import in_interval

    if value is None:
        return
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if interval is not None:
        for item in values:
            if not in_interval(item, interval):
                raise ValueError(f"{option} {item} is outside {interval}")
    if unique:
        repeated = sorted({item for item in values if values.count(item) > 1}, key=str)
        if repeated:
            raise ValueError(f"{option} gives {', '.join(map(str, repeated))} twice; give each value once")


# The options several commands share and their ranges, checked for every command before it runs (``dispatch``).
SHARED_BOUNDS = {"img_size": "[1, inf)", "batch_size": "[1, inf)", "workers": "[0, inf)", "num_classes": "[0, inf)"}


def check_shared_options(args: argparse.Namespace) -> None:
    """Refuse a value of a shared option (:data:`SHARED_BOUNDS`) outside its range: ``--img-size 0`` is a mistake,
    not "unset"."""
    for name, interval in SHARED_BOUNDS.items():
        check_option("--" + name.replace("_", "-"), getattr(args, name, None), interval)


def check_blocks(model: nn.Module, blocks: list[int] | int, option: str = "--blocks", last: bool = False) -> None:
    """Refuse block indices (0-based; ``last``: a count of last blocks) that the model's depth does not have, or
    given twice.

    Raises:
        ValueError: ``"--blocks 11 is outside [0, 3]: VisionTransformer has 4 blocks"``.
    """
    depth = len(getattr(model, "blocks", ()))
    if depth == 0:
        raise ValueError(f"{option}: {type(model).__name__} has no transformer blocks to read")
    check_option(option, blocks, unique=True)
    interval = f"[1, {depth}]" if last else f"[0, {depth - 1}]"
    try:
        check_option(option, blocks, interval)
    except ValueError as error:
        raise ValueError(f"{error}: {type(model).__name__} has {depth} block{'s' if depth != 1 else ''}") from None
