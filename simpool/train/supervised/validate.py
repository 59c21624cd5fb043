"""``simpool validate``: top-1 and top-5 of a trained checkpoint on an ImageFolder split."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLE = """examples:
  simpool validate --checkpoint runs/vit_small_patch16_224-simpool/best.safetensors --data /data/imagenet
  simpool validate --checkpoint best_ema.safetensors --config runs/x/config.yaml --data bench_export --split val
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="weights (.safetensors, or .pt read with weights_only)")
    parser.add_argument("--data", required=True, help="dataset root holding the split folder (ImageFolder layout)")
    parser.add_argument("--split", default="val", help="split folder under --data")
    parser.add_argument("--config", help="the run's config.yaml; default: config.yaml beside the checkpoint")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--num-workers", type=int, default=4)
    parser.add_argument("--out", help="also write the result as JSON here")


def validate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    split: str = "val",
    config_path=None,
    batch_size: int = 128,
    num_workers: int = 4,
) -> dict:
    """Build the run's model, load ``checkpoint`` and return ``{"top1", "top5", "loss", "images", "skipped"}``."""
    from torch.utils.data import DataLoader

    from ..data.datasets import collate_skip, create_dataset
    from ..models import create_model, load_checkpoint
    from ..utils import default_device
    from .config import load_config
    from .supervised.config import SupervisedConfig
    from .supervised.recipe import build_transforms
    from .validation import validate

    config_path = Path(config_path) if config_path else Path(checkpoint).parent / "config.yaml"
    if not config_path.is_file():
        raise ValueError(f"no config at {config_path}: pass --config with the run's config.yaml")
    config = load_config(SupervisedConfig, config_path, [f"data.root={data}", f"data.val_split={split}"])
    dataset = create_dataset(config.data.dataset, config.data.root, split, build_transforms(config)[1])
    device = default_device()
    model = create_model(
        config.model.name,
        pool=config.model.pool,
        pool_kwargs=config.model.pool_kwargs,
        num_classes=len(dataset.classes),
        in_chans=config.data.in_chans,
        **config.model.kwargs,
    )
    load_checkpoint(model, checkpoint)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_skip)
    return validate(model.to(device), loader, device, config.train.amp if device.type == "cuda" else "none")


def run(args: argparse.Namespace) -> int:
    try:
        result = validate_checkpoint(
            args.checkpoint, args.data, args.split, args.config, args.batch_size, args.num_workers
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"simpool validate: {error}")
        return 2
    print(
        f"top1 {result['top1']:.2f}  top5 {result['top5']:.2f}  loss {result['loss']:.4f}  "
        f"images {result['images']}  skipped {result['skipped']}"
    )
    if args.out:
        from ..utils import write_json

        write_json(args.out, result)
    return 0
