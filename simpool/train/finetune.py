"""Fine-tuning a pre-trained model on an ImageFolder dataset (paper Table 4; ``simpool eval finetune``).

Supervised training (:class:`~simpool.train.supervised.recipe.SupervisedRecipe`) whose model starts from a
checkpoint (ours, an official SimPool release or a timm state dict): every weight but the classifier's, which
starts afresh for the new task's classes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .launch import launch
from .supervised.config import SupervisedConfig
from .supervised.recipe import SupervisedRecipe


def with_checkpoint(config: SupervisedConfig, checkpoint: str, checkpoint_key: str | None = None) -> SupervisedConfig:
    """A copy of ``config`` whose model starts from ``checkpoint`` (``checkpoint_key``: an entry of its dict)."""
    model = dataclasses.replace(config.model, checkpoint=str(checkpoint), checkpoint_key=checkpoint_key)
    return dataclasses.replace(config, model=model)


class FinetuneRecipe(SupervisedRecipe):
    """Supervised training from ``config.model.checkpoint``; its result names the checkpoint.

    Raises:
        ValueError: the config names no checkpoint.
        FileNotFoundError: no file at the checkpoint's path (before any run folder is made).
    """

    name = "finetune"

    def __init__(self, config: SupervisedConfig):
        checkpoint = config.model.checkpoint
        if not checkpoint:
            raise ValueError("fine-tuning needs a checkpoint: --checkpoint FILE (model.checkpoint)")
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"no checkpoint at {checkpoint}")
        super().__init__(config)

    def summary(self, row: dict) -> dict:
        return {**super().summary(row), "checkpoint": self.config.model.checkpoint}


def finetune(config: SupervisedConfig, checkpoint: str, checkpoint_key: str | None = None) -> dict:
    """Fine-tune from ``checkpoint`` with ``config``; returns the last log row, ``best_top1``, ``checkpoint`` and
    ``run_dir``."""
    config = with_checkpoint(config, checkpoint, checkpoint_key)
    return launch(FinetuneRecipe(config), config)
