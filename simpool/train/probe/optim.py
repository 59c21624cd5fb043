"""How the heads of a grid are optimized: one optimizer over every head, one param group per entry of the grid.

Each head ``i`` of a grid trains at ``lr_i x batch / 256`` with its own weight decay (its base learning rate
scaled by the global batch, as MAE, DINO and efficient-probing scale theirs). Three optimizers, by name:

- ``adamw``: AdamW (the attentive-probing default, base lr 1e-3);
- ``lars``: timm's ``Lars`` (efficient-probing's protocol, base lr 0.1), two groups per head: its matrices
  adapted and its 1-D parameters (biases) not, as MAE's LARS excludes them;
- ``sgd``: SGD with momentum (DINO's linear probe, base lr 1e-3).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

DEFAULT_LR = {"adamw": 1e-3, "lars": 0.1, "sgd": 1e-3}  # base learning rates (x batch / 256)


def head_groups(grid, batch_size: int) -> list[dict]:
    """One param group per head of ``grid`` (its ``heads`` and their :class:`~.grid.Entry`: base lr, weight decay)."""
    scale = batch_size / 256.0
    return [
        {"params": [p for p in head.parameters() if p.requires_grad], "lr": lr * scale, "weight_decay": wd}
        for head, (_, lr, wd, _) in zip(grid.heads, grid.entries, strict=True)
    ]


def adamw(groups: list[dict], momentum: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=groups[0]["lr"])


def sgd(groups: list[dict], momentum: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=groups[0]["lr"], momentum=momentum)


def lars(groups: list[dict], momentum: float) -> torch.optim.Optimizer:
    from timm.optim import Lars

    split = []
    for group in groups:  # (matrices: adapted, vectors: neither adapted nor decayed) of each head
        matrices = [p for p in group["params"] if p.ndim > 1]
        vectors = [p for p in group["params"] if p.ndim <= 1]
        split.append({**group, "params": matrices, "always_adapt": True})
        split.append({**group, "params": vectors, "weight_decay": 0.0, "always_adapt": False})
    return Lars([g for g in split if g["params"]], lr=groups[0]["lr"], momentum=momentum)


OPTIMIZERS: dict[str, Callable[[list[dict], float], torch.optim.Optimizer]] = {
    "adamw": adamw,
    "lars": lars,
    "sgd": sgd,
}


def build_optimizer(grid, opt: str = "adamw", batch_size: int = 256, momentum: float = 0.9) -> torch.optim.Optimizer:
    """The optimizer ``opt`` over every head of ``grid`` (:class:`~.grid.ProbeGrid`); ``lr = base x batch / 256``,
    each head's weight decay its entry's."""
    if opt not in OPTIMIZERS:
        raise ValueError(f"optimizer {opt!r}; valid: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[opt](head_groups(grid, batch_size), momentum)


__all__ = ["DEFAULT_LR", "OPTIMIZERS", "build_optimizer", "head_groups"]
