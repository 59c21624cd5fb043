"""A grid of heads over a frozen backbone's features, trained in one pass.

Each head is ``pool -> BatchNorm1d(affine=False) -> Linear`` (efficient-probing's ``probe_heads.py`` and AIM's
convention), its pool any name of the registry (:func:`simpool.pooling.create_pool`), or ``linear``: the usual
linear probe on the CLS token (GAP of the patch tokens where the backbone has none). The linear-probe protocol
(:mod:`.linear`) uses the same grid with plain linear heads on the pooled feature (:func:`linear_grid`).

Every head x head options x learning rate x weight decay is one :class:`ProbeHead` of one :class:`ProbeGrid`
(an :class:`Entry`): one backbone forward per batch feeds them all, and the step's loss is the sum of the heads'
losses (:func:`grid_loss`), so each head's gradient is that of its own loss (dinov2's grid of linear heads,
CAPI's lr x wd grid, V-JEPA 2's parallel optimizer settings). Every head starts from the same seed, so each
entry of a grid trains exactly as it would alone. Their accuracy is counted by
:func:`simpool.train.validation.topk_correct`, the package's one top-k routine (:func:`evaluate_grid`).
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ...models.generic import num_prefix_tokens
from ...pooling import create_pool
from ..distributed import all_gather_rows, all_reduce_sum
from ..validation import topk_correct
from .config import BLOCK_MODES, LINEAR, check_grid, grid_options, head_pool


class Entry(NamedTuple):
    """One head of a grid: its name, base learning rate, weight decay, and the values of the options the grid
    varies for it (``(("num_queries", 8),)``; the options it does not vary are in ``probe.head_kwargs``)."""

    head: str
    lr: float
    weight_decay: float = 0.0
    options: tuple = ()

    @property
    def label(self) -> str:
        """``ep[num_queries=8]``: the head and its varied options (the head's name alone when none)."""
        inside = ",".join(f"{key}={value}" for key, value in self.options)
        return f"{self.head}[{inside}]" if inside else self.head

    def setting(self) -> dict:
        """What ``results.json`` names as the entry's setting."""
        return {"head": self.head, "lr": self.lr, "weight_decay": self.weight_decay, "options": dict(self.options)}


class FrozenBackbone(nn.Module):
    """A frozen model's tokens ``(B, P + N, C)``: ``P`` prefix tokens (CLS, registers) then ``N`` patch tokens.

    ``blocks`` is the last N blocks (an int) or a list of block indices (negative from the end), from timm's
    ``forward_intermediates``. Their outputs are averaged after the final norm (``mode="mean"``, width ``C``),
    averaged before it and then normed once (``"avg"``: AIM's ``AverageLayers``), or concatenated along channels
    (``"concat"``, width ``blocks x C``, the final norm applied to each); CNN feature maps ``(B, C, H, W)`` become
    ``H x W`` tokens. Always in eval mode, never a gradient.
    """

    def __init__(self, model: nn.Module, blocks: int | Sequence[int] = 1, mode: str = "mean"):
        super().__init__()
        if mode not in BLOCK_MODES:
            raise ValueError(f"blocks mode {mode!r}; valid: {', '.join(BLOCK_MODES)}")
        self.model = model.eval().requires_grad_(False)
        self.blocks = check_blocks(model, blocks)
        self.mode = mode
        self.num_prefix_tokens = num_prefix_tokens(model)
        self.grid: tuple[int, int] | None = None  # (h, w) of the patch tokens, set by each forward

    def train(self, mode: bool = True) -> FrozenBackbone:
        super().train(mode)
        self.model.eval()  # frozen: dropout off and BatchNorm statistics fixed whatever the grid's mode
        return self

    def _features(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """A model without ``forward_intermediates``: its ``forward_features`` as ``[(spatial, prefix)]``."""
        if self.blocks != 1:
            raise ValueError(f"{type(self.model).__name__} has no forward_intermediates: use blocks=1")
        features = self.model.forward_features(images)
        if features.ndim == 4:
            return [(features, None)]
        P = self.num_prefix_tokens
        B, T, C = features.shape  # batch, tokens, channels
        h, w = _square_grid(T - P)
        spatial = features[:, P:].transpose(1, 2).reshape(B, C, h, w)  # (B, C, h, w)
        return [(spatial, features[:, :P] if P else None)]

    def _intermediates(self, images: torch.Tensor, norm: bool) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """``(spatial (B, C, h, w), prefix (B, P, C) or None)`` of each of the ``blocks``."""
        forward = getattr(self.model, "forward_intermediates", None)
        if forward is None:
            return self._features(images)
        parameters = inspect.signature(forward).parameters
        kwargs = {"indices": self.blocks, "intermediates_only": True}
        if "norm" in parameters:
            kwargs["norm"] = norm
        with_prefix = self.num_prefix_tokens > 0 and "return_prefix_tokens" in parameters
        if with_prefix:
            kwargs["return_prefix_tokens"] = True
        outputs = forward(images, **kwargs)
        return [tuple(out) if with_prefix else (out, None) for out in outputs]

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        per_block = []
        for spatial, prefix in self._intermediates(images, norm=self.mode != "avg"):
            B, C, h, w = spatial.shape  # batch, channels, grid
            tokens = spatial.flatten(2).transpose(1, 2)  # (B, N, C)
            per_block.append(torch.cat([prefix, tokens], dim=1) if prefix is not None else tokens)  # (B, P + N, C)
        lengths = {tuple(t.shape[:2]) for t in per_block}
        widths = {t.shape[2] for t in per_block}
        if len(lengths) > 1 or (self.mode != "concat" and len(widths) > 1):
            raise ValueError(f"the blocks {self.blocks} give tokens of different shapes: use blocks=1")
        self.grid = (h, w)
        if self.mode == "concat":
            return torch.cat(per_block, dim=-1)  # (B, P + N, blocks x C)
        mean = torch.stack(per_block).mean(0)  # (B, P + N, C)
        if self.mode == "avg":
            norm = getattr(self.model, "norm", None)
            return norm(mean) if isinstance(norm, nn.Module) else mean  # AIM: the final norm of the average
        return mean


def check_blocks(model: nn.Module, blocks: int | Sequence[int]) -> int | list[int]:
    """``blocks`` as ``forward_intermediates`` takes it (the last N, or indices), checked against the model's depth.

    Raises:
        ValueError: N below 1 or above the depth, an index outside ``[-depth, depth)``, an index twice.
    """
    depth = len(model.blocks) if hasattr(model, "blocks") else None
    if isinstance(blocks, int):
        if blocks < 1 or (depth is not None and blocks > depth):
            raise ValueError(f"blocks {blocks}: {type(model).__name__} has {depth} blocks; valid: 1 to {depth}")
        return blocks
    indices = [int(i) for i in blocks]
    if not indices or len(set(indices)) != len(indices):
        raise ValueError(f"block indices {indices}: give at least one, each once")
    if depth is not None and any(not -depth <= i < depth for i in indices):
        valid = f"valid: -{depth} to {depth - 1}"
        raise ValueError(f"block indices {indices}: {type(model).__name__} has {depth} blocks; {valid}")
    return indices


def linear_feature(tokens: torch.Tensor, num_prefix: int) -> torch.Tensor:
    """What ``linear`` (and the k-NN row) reads of tokens ``(B, P + N, C)``: the CLS token, or GAP of the patch
    tokens when ``P = 0``; a pooled feature ``(B, C)`` as it is."""
    if tokens.ndim == 2:
        return tokens
    return tokens[:, 0] if num_prefix else tokens.mean(1)  # (B, C)


def _square_grid(num_tokens: int) -> tuple[int, int]:
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f"{num_tokens} patch tokens do not form a square grid")
    return side, side


class ProbeHead(nn.Module):
    """``pool -> BatchNorm1d(affine=False) -> Linear`` on tokens ``(B, P + N, C)``, or a linear head on a
    pooled feature ``(B, C)``.

    The pool sees the ``N`` patch tokens, or all ``P + N`` with ``with_cls`` (efficient-probing's ``_all``
    heads). ``linear`` has no pool: the CLS token (the first prefix token), or GAP of the patch tokens when
    ``P = 0``, or the feature as it is when given ``(B, C)``. Pools of ``k > 1`` vectors are flattened to
    ``k x C_out``. ``batch_norm=False`` leaves out the BatchNorm (DINO's linear probe). The classifier starts
    as DINO's: ``W ~ N(0, 0.01^2)``, ``b = 0``.
    """

    def __init__(
        self,
        name: str,
        dim: int,
        num_classes: int,
        num_prefix: int = 0,
        with_cls: bool = False,
        batch_norm: bool = True,
        **pool_kwargs,
    ):
        super().__init__()
        self.name, self.dim, self.num_prefix, self.with_cls = name, dim, num_prefix, with_cls and num_prefix > 0
        self.pool = None if name == LINEAR else create_pool(name, dim, **pool_kwargs)
        # the pooled width from the pooling contract: (B, out_features) or (B, k, out_features), flattened
        width = dim if self.pool is None else self.pool.out_features * getattr(self.pool, "num_vectors", 1)
        self.norm = nn.BatchNorm1d(width, affine=False) if batch_norm else nn.Identity()
        self.fc = nn.Linear(width, num_classes)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def pool_input(self, tokens: torch.Tensor) -> torch.Tensor:
        """What the pool sees: ``(B, N, C)``, or ``(B, P + N, C)`` with ``with_cls``."""
        return tokens if self.with_cls else tokens[:, self.num_prefix :]

    def pooled(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, D)``: the pooled vector before the BatchNorm."""
        if tokens.ndim == 2:
            return tokens  # a pooled feature (B, C)
        if self.pool is None:
            return linear_feature(tokens, self.num_prefix)  # (B, C)
        return self.pool(self.pool_input(tokens)).flatten(1)  # (B, D) or (B, k, D) -> (B, k * D)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(self.pooled(tokens)))  # (B, classes)

    @torch.no_grad()
    def attention(self, tokens: torch.Tensor) -> torch.Tensor | None:
        """The pool's attention over the ``N`` patch tokens ``(B, N)``, the mean over its queries or heads when it
        has several (the convention of :func:`simpool.models.attention_maps`); ``None`` for ``linear``."""
        if self.pool is None:
            return None
        N = tokens.shape[1] - self.num_prefix
        _, attention = self.pool(self.pool_input(tokens), return_attention=True)
        attention = attention.flatten(2) if attention.ndim > 3 else attention  # a map layout: (B, [M,] N)
        if attention.ndim == 3:
            attention = attention.mean(1)  # over queries or heads: (B, T)
        return attention.reshape(attention.shape[0], -1)[:, -N:]  # the patch tokens come last: (B, N)


class ProbeGrid(nn.Module):
    """A frozen backbone (or none) and one :class:`ProbeHead` per :class:`Entry` (``(head, lr)`` tuples are
    entries without weight decay or options).

    ``forward(images (B, 3, H, W))`` runs the backbone once; any other input (cached tokens ``(B, T, C)``,
    features ``(B, D)``) goes to the heads as it is. Returns the logits of every head: ``(heads, B, classes)``.
    """

    def __init__(self, backbone: nn.Module | None, heads: Sequence[ProbeHead], entries: Sequence[tuple]):
        super().__init__()
        if len(heads) != len(entries):
            raise ValueError(f"{len(heads)} heads for {len(entries)} entries")
        self.backbone = backbone
        self.heads = nn.ModuleList(heads)
        self.entries = [Entry(entry[0], float(entry[1]), *entry[2:]) for entry in entries]

    def tokens(self, inputs: torch.Tensor) -> torch.Tensor:
        """Float features of images (one backbone forward) or of cached tokens and features (as they are)."""
        tokens = self.backbone(inputs) if inputs.ndim == 4 and self.backbone is not None else inputs
        return tokens.float() if tokens.dtype == torch.float16 else tokens

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Every head's logits on ``tokens``: ``(heads, B, classes)``."""
        return torch.stack([head(tokens) for head in self.heads])  # (heads, B, classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.logits(self.tokens(inputs))  # (heads, B, classes)


def grid_entries(
    heads: Sequence[str],
    lrs: Sequence[float],
    weight_decays: Sequence[float] = (0.0,),
    head_kwargs: dict[str, dict] | None = None,
) -> list[Entry]:
    """Every head x its varied options x lr x weight decay, in that order (a list value of ``head_kwargs`` is
    varied: ``{"ep": {"num_queries": [8, 16]}}``)."""
    entries = []
    for name in heads:
        _, varied = grid_options((head_kwargs or {}).get(name, {}))
        for values in itertools.product(*varied.values()):
            options = tuple(zip(varied, values, strict=True))
            entries += [Entry(name, float(lr), float(wd), options) for lr in lrs for wd in weight_decays]
    return entries


def seeded_head(seed: int, *args, **kwargs) -> ProbeHead:
    """A :class:`ProbeHead` initialised from ``seed`` whatever was drawn before: the same head alone or in a grid."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ProbeHead(*args, **kwargs)


def build_grid(
    backbone: FrozenBackbone,
    heads: Sequence[str],
    lrs: Sequence[float],
    num_classes: int,
    img_size: int,
    with_cls: bool = False,
    head_kwargs: dict[str, dict] | None = None,
    weight_decays: Sequence[float] = (0.0,),
    seed: int = 0,
) -> ProbeGrid:
    """One head per :class:`Entry` of :func:`grid_entries`, each initialised from ``seed``, sized by one backbone
    forward on a blank image."""
    head_kwargs = head_kwargs or {}
    check_grid(heads, lrs, weight_decays, head_kwargs)
    device = next(backbone.model.parameters()).device
    tokens = backbone(torch.zeros(1, 3, img_size, img_size, device=device))  # (1, P + N, C)
    C = tokens.shape[-1]  # channels of (1, P + N, C)
    P = backbone.num_prefix_tokens
    entries = grid_entries(heads, lrs, weight_decays, head_kwargs)
    modules = []
    for entry in entries:
        fixed, _ = grid_options(head_kwargs.get(entry.head, {}))
        kwargs = {**fixed, **dict(entry.options)}
        pool, sees_prefix = head_pool(entry.head)  # simpool_all: simpool over the prefix tokens too
        modules.append(seeded_head(seed, pool, C, num_classes, P, with_cls or sees_prefix, **kwargs).to(device))
    return ProbeGrid(backbone, modules, entries)


def linear_grid(dim: int, num_classes: int, lrs: Sequence[float], backbone: nn.Module | None = None) -> ProbeGrid:
    """One plain linear head (no BatchNorm) per base lr over ``dim``-wide features: DINO's linear probe, as
    dinov2 trains its grid; ``backbone`` (or none: cached features) gives the features of images."""
    check_grid([LINEAR], lrs, lr_option="--lrs")
    heads = [ProbeHead(LINEAR, dim, num_classes, batch_norm=False) for _ in lrs]
    return ProbeGrid(backbone, heads, [(LINEAR, lr) for lr in lrs])


def grid_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The sum over heads of each head's mean cross-entropy: ``logits (heads, B, classes)``, ``targets (B,)``."""
    heads = len(logits)
    losses = F.cross_entropy(logits.flatten(0, 1).float(), targets.repeat(heads), reduction="none")  # (heads x B,)
    return losses.view(heads, -1).mean(1).sum()


def grid_step(grid: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, device: torch.device):
    """A recipe's step on a grid: ``(sum of the heads' losses, count)`` from one forward of ``inputs``."""
    targets = targets.to(device, non_blocking=True)
    return grid_loss(grid(inputs.to(device, non_blocking=True)), targets), len(targets)


@torch.no_grad()
def evaluate_grid(
    grid: ProbeGrid,
    batches: Iterable,
    device: torch.device,
    heads: bool = True,
    features: bool = False,
    gather: bool = False,
):
    """Top-1 and top-5 (percent) of every head over ``batches`` of ``(inputs, labels)``, summed over processes, and
    with ``features`` the linear head's feature of every image (:func:`linear_feature`), float16 on the device (as
    :func:`simpool.evaluate.features.extract_features` keeps them): this process's own, or with ``gather`` every
    process's in rank order. One backbone forward per batch for both. Every process must call it.

    Returns:
        ``{"top1": (heads,), "top5": (heads,), "count": int}`` (``count`` over every process), plus ``"features"
        (n, C)`` and ``"labels" (n,)`` (with ``features``).
    """
    grid.eval()
    correct = torch.zeros(len(grid.heads), 2, dtype=torch.float64, device=device)  # (heads, top1 / top5)
    count = torch.zeros(1, dtype=torch.float64, device=device)
    prefix = getattr(grid.backbone, "num_prefix_tokens", 0)  # features (B, C) are read as they are
    kept = [torch.zeros(0, grid.heads[0].dim, dtype=torch.float16, device=device)]  # a process may have no image
    labels_kept = [torch.zeros(0, dtype=torch.long, device=device)]
    for inputs, labels in batches:
        if len(labels) == 0:
            continue
        labels = labels.to(device)
        tokens = grid.tokens(inputs.to(device))
        if heads:
            logits = grid.logits(tokens)  # (heads, B, classes)
            correct += torch.stack([topk_correct(head_logits, labels) for head_logits in logits])  # (heads, 2)
        if features:
            kept.append(linear_feature(tokens, prefix).half())  # (B, C)
            labels_kept.append(labels)
        count += len(labels)
    correct, count = all_reduce_sum(correct), int(all_reduce_sum(count).item())
    scores = 100.0 * correct / max(count, 1)  # (heads, 2)
    result = {"top1": scores[:, 0].cpu(), "top5": scores[:, 1].cpu(), "count": count}
    if features:
        found, found_labels = torch.cat(kept), torch.cat(labels_kept)  # (n, C), (n,)
        result["features"] = all_gather_rows(found) if gather else found
        result["labels"] = all_gather_rows(found_labels) if gather else found_labels
    return result


__all__ = [
    "Entry",
    "FrozenBackbone",
    "ProbeGrid",
    "ProbeHead",
    "build_grid",
    "evaluate_grid",
    "grid_entries",
    "grid_loss",
    "grid_step",
    "check_blocks",
    "linear_feature",
    "linear_grid",
    "seeded_head",
]
