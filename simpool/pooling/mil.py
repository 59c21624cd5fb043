"""Attention-based multiple-instance-learning pooling (Ilse et al., "Attention-based Deep Multiple Instance
Learning", ICML 2018).

The locations are the instances ``h_n`` of a bag; a small network scores each, a softmax over the bag
turns the scores into weights, and the bag is the weighted mean:

    a_n = softmax_n( w^T tanh(V h_n) )                       (8)   attention
    a_n = softmax_n( w^T (tanh(V h_n) * sigm(U h_n)) )       (9)   gated attention
    z   = sum_n a_n h_n                                      (7)

efficient-probing's ``ABMILPHead`` (default options) is (8) with ``V`` of width ``C`` and biases.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Pool, as_tokens, attention_layout
from .framework import Components
from .registry import register_pool


def abmil(tokens: torch.Tensor, hidden: nn.Linear, score: nn.Linear, gate: nn.Linear | None = None):
    """(7)-(9): ``(B, N, C) -> (B, C)`` and the weights ``(B, 1, N)``.

    Args:
        tokens: ``h``, ``(B, N, C)``.
        hidden: ``V`` (with its bias).
        score: ``w``, ``L -> 1``.
        gate: ``U`` for the gated attention (9), None for (8).
    """
    B, N, C = tokens.shape  # batch, locations, channels
    hidden_tokens = torch.tanh(hidden(tokens))  # (B, N, L)
    if gate is not None:
        hidden_tokens = hidden_tokens * torch.sigmoid(gate(tokens))  # (B, N, L)
    attention = score(hidden_tokens).transpose(1, 2).softmax(dim=-1)  # (B, N, 1) -> (B, 1, N)
    pooled = (attention @ tokens).view(B, C)  # (B, 1, N) x (B, N, C) -> (B, C)
    return pooled, attention


@register_pool("abmilp")
class ABMILPool(Pool):
    """Attention-based MIL pooling (Ilse et al., ICML 2018), (7)-(9); gated attention with ``gated=True``.

    Attention: ``(B, ...)``, the instance weights ``a``.

    Args:
        dim: ``C``.
        hidden_dim: ``L``, the width of ``V`` (and ``U``); None means ``dim`` (efficient-probing; Ilse et al. use 128).
        gated: the gated attention (9).
    """

    components = Components(
        "ABMIL",
        "P",
        phi_k="w⊤ tanh(V X)",
        attention="σ2(S)",
        phi_v="X",
        source="Ilse et al., ICML 2018",
    )

    def __init__(self, dim: int, hidden_dim: int | None = None, gated: bool = False):
        super().__init__()
        hidden_dim = hidden_dim or dim
        self.out_features, self.gated = dim, gated
        self.hidden = nn.Linear(dim, hidden_dim)
        self.gate = nn.Linear(dim, hidden_dim) if gated else None
        self.score = nn.Linear(hidden_dim, 1)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        tokens, grid = as_tokens(x)
        pooled, attention = abmil(tokens, self.hidden, self.score, self.gate)  # (B, C), (B, 1, N)
        return (pooled, attention_layout(attention, grid)) if return_attention else pooled

    def load_reference_state_dict(self, state_dict: dict) -> None:
        """Load ``ABMILPHead`` weights of efficient-probing (default options, ``depth=2``, tanh).

        Names: ``attention_predictor.0 -> hidden``, ``attention_predictor.2 -> score``.
        """
        renames = {"attention_predictor.0.": "hidden.", "attention_predictor.2.": "score."}
        ours = {}
        for key, value in state_dict.items():
            prefix = next((p for p in renames if key.startswith(p)), None)
            if prefix is None:
                raise KeyError(f"abmilp: unexpected key {key!r} (only depth=2 without self-attention is supported)")
            ours[renames[prefix] + key.removeprefix(prefix)] = value
        self.load_state_dict(ours)


__all__ = ["ABMILPool", "abmil"]
