"""Supervised and DINO training, distributed set-up, checkpoints."""

from .dino_config import DinoConfig
from .dino_train import train_dino
from .supervised import train
from .supervised_config import SupervisedConfig

__all__ = ["DinoConfig", "SupervisedConfig", "train", "train_dino"]
