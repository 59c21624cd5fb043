"""What makes the two arms a fair comparison: the same initial weights wherever the models share a parameter,
and the same weight-decay rule.

For a seed, the CLS model is built first (``torch.manual_seed(seed)``, then :func:`~.config.bench_vit`); the SimPool
model is built next, from the generator's state that follows, and every tensor it shares with the CLS model (the
patch embedding, the blocks, the final norm, the classifier) is then copied from it by name. Their position
embeddings differ by one slot: the CLS model's first slot belongs to its CLS token, so SimPool gets the patch
positions, the slots after it. What stays each model's own: the CLS token; SimPool's pool (its LayerNorm, ``q``
and ``k``) and the LayerNorm after it (``fc_norm``).

Weight decay skips biases, norms, tokens and position embeddings, as timm's ``param_groups_weight_decay`` does
with the model's ``no_weight_decay()`` names: every parameter of one dimension or named ``*.bias``, and the
CLS token and position embedding, gets none.
"""

from __future__ import annotations

import torch
from timm.optim import param_groups_weight_decay
from torch import nn

from .config import DemoConfig, bench_vit


def copy_shared(source: nn.Module, target: nn.Module) -> list[str]:
    """Copy into ``target`` every state tensor of ``source`` with the same name and shape, and the patch positions of
    a ``pos_embed`` that has ``source.num_prefix_tokens - target.num_prefix_tokens`` more slots (the prefix tokens'
    come first); returns the names copied, in ``target``'s order."""
    extra = getattr(source, "num_prefix_tokens", 0) - getattr(target, "num_prefix_tokens", 0)
    theirs, copied = source.state_dict(), []
    with torch.no_grad():
        for name, tensor in target.state_dict().items():
            value = theirs.get(name)
            if value is not None and name == "pos_embed" and value.shape[1] == tensor.shape[1] + extra:
                value = value[:, extra:]  # (1, prefix + patches, D) -> (1, patches, D)
            if value is None or value.shape != tensor.shape:
                continue
            tensor.copy_(value)  # the state dict's tensors share the parameters' storage
            copied.append(name)
    return copied


def initial_vit(kind: str, config: DemoConfig) -> nn.Module:
    """The arm's model at initialisation for ``config.seed``: the CLS model, or a model whose shared parameters are
    the CLS model's (:func:`copy_shared`) and whose own ones come from the seed's generator after it."""
    torch.manual_seed(config.seed)
    reference = bench_vit("cls", config)
    if kind == "cls":
        return reference
    model = bench_vit(kind, config)
    copy_shared(reference, model)
    return model


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """The optimizer's parameter groups: timm's ``param_groups_weight_decay`` with the model's ``no_weight_decay()``
    (no decay for 1-D parameters, biases, tokens and position embeddings; ``weight_decay`` for the rest)."""
    skip = model.no_weight_decay() if hasattr(model, "no_weight_decay") else ()
    return param_groups_weight_decay(model, weight_decay, no_weight_decay_list=skip)


def parameter_count(model: nn.Module) -> int:
    """The model's number of parameters."""
    return sum(parameter.numel() for parameter in model.parameters())
