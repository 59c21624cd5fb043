"""Top-1 and top-5 of a trained checkpoint on an ImageFolder split (``simpool validate``)."""

from __future__ import annotations

from pathlib import Path

import torch


def validate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    split: str = "val",
    config_path: str | Path | None = None,
    batch_size: int = 128,
    workers: int = 4,
    device: torch.device | None = None,
    progress: bool = False,
) -> dict:
    """Build the run's model, load ``checkpoint`` and return ``{"top1", "top5", "loss", "images", "skipped"}``.

    Args:
        config_path: the run's ``config.yaml``; None: the one beside the checkpoint.
        device: None: CUDA when available.
    """
    from torch.utils.data import DataLoader

    from ...data.datasets import check_skipped, collate_skip, create_dataset
    from ...data.transforms import build_transforms
    from ...models.loading import load_model
    from ...utils import default_device
    from ..config import load_config
    from ..validation import validate
    from .config import SupervisedConfig

    if not Path(checkpoint).is_file():  # before the config, which is looked for beside it
        raise FileNotFoundError(f"no checkpoint at {checkpoint}")
    config_path = Path(config_path) if config_path else Path(checkpoint).parent / "config.yaml"
    if not config_path.is_file():
        raise ValueError(f"no config at {config_path}: pass --config with the run's config.yaml")
    if is_dino_recipe(config_path):
        raise ValueError(
            f"{config_path} is a DINO recipe: validate needs a supervised run (simpool train); "
            "evaluate a DINO backbone with simpool eval knn or simpool eval linear"
        )
    check_split_folder(data, split)  # never the bench rendered on the fly in place of the images named
    config = load_config(SupervisedConfig, config_path, [f"data.root={data}", f"data.val_split={split}"])
    dataset = create_dataset(config.data.dataset, config.data.root, split, build_transforms(config.data)[1])
    device = device or default_device()
    model = load_model(
        config.model.name,
        pool=config.model.pool,
        pool_kwargs=config.model.pool_kwargs,
        model_kwargs={"in_chans": config.data.in_chans, **config.model.kwargs},
        checkpoint=checkpoint,
        num_classes=len(dataset.classes),
    )
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_skip)
    amp = config.train.amp if device.type == "cuda" else "none"
    result = validate(model.to(device), loader, device, amp, progress=progress)
    check_skipped(result["skipped"], result["images"] + result["skipped"], f"images of {Path(data) / split}")
    return result


def check_split_folder(data: str | Path, split: str) -> None:
    """Refuse a ``data`` root that is not a folder holding ``split/`` (an ImageFolder layout), in one line."""
    data = Path(data)
    if not data.exists():
        raise FileNotFoundError(f"--data {data}: no such folder")
    if not data.is_dir():
        raise NotADirectoryError(f"--data {data} is a file: give the dataset root holding {split}/<class>/<image>")
    if not (data / split).is_dir():
        raise ValueError(f"--data {data} has no {split}/ folder: give the root holding {split}/<class>/<image>")


DINO_SECTIONS = ("head", "loss")  # sections of a DINO recipe (simpool.train.dino.config) a supervised one lacks


def is_dino_recipe(config_path: str | Path) -> bool:
    """Whether the YAML at ``config_path`` is a DINO recipe (``simpool train-dino``'s ``config.yaml``)."""
    import yaml

    try:
        raw = yaml.safe_load(Path(config_path).read_text())
    except (yaml.YAMLError, UnicodeDecodeError):
        return False  # load_config names what is wrong with it
    return isinstance(raw, dict) and any(section in raw for section in DINO_SECTIONS)
