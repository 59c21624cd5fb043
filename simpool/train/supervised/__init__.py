"""Supervised training with timm's machinery: config, augmentation splits, the attention monitor, and the
recipe that runs them through the engine."""
