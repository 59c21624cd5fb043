"""Fine-tuning a pre-trained model on an ImageFolder dataset (paper Table 4; ``simpool eval finetune``).

A thin layer over supervised training: the recipe's model starts from a checkpoint (ours or an official
SimPool release, every weight but the classifier's), then trains with the recipe.
"""

from __future__ import annotations

from .supervised.config import SupervisedConfig
from .supervised.recipe import train


def finetune(config: SupervisedConfig, checkpoint: str, checkpoint_key: str | None = None) -> dict:
    """Fine-tune from ``checkpoint`` with ``config``; returns the last log row with ``best_top1``."""
    config.model.checkpoint, config.model.checkpoint_key = checkpoint, checkpoint_key
    result = train(config)
    return {**result, "checkpoint": checkpoint}
