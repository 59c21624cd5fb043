"""Supervised and DINO training, distributed set-up, checkpoints."""

from .dino.config import DinoConfig
from .dino.recipe import train_dino
from .supervised.config import SupervisedConfig
from .supervised.recipe import train

__all__ = ["DinoConfig", "SupervisedConfig", "train", "train_dino"]
