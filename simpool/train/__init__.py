"""Supervised and DINO training, distributed set-up, checkpoints."""
