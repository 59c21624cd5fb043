"""DOLG's local branch as a pool (Yang et al., "DOLG: Single-Stage Image Retrieval with Deep Orthogonal
Fusion of Local and Global Features", ICCV 2021).

DOLG weighs L2-normalised local features by a softplus attention score. efficient-probing's ``dolg`` head
is this local branch without ASPP, averaged over the locations (the orthogonal fusion with a global vector
of another stage is not part of it, and not here):

    F   = BN(W_1 X)                                  1x1 convolution, ``C -> C'``
    s_n = softplus(w_2^T ReLU(F_n) + b_2)            attention score, >= 0
    u   = (1/N) sum_n s_n F_n / ||F_n||              (B, C')

The returned attention is ``s`` normalised to sum to 1: ``u = (sum_n s_n / N) sum_n a_n F_n/||F_n||``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import Pool, as_tokens, attention_layout
from .framework import Components
from .registry import register_pool


@register_pool("dolg")
class DOLGPool(Pool):
    """DOLG's spatial attention on L2-normalised local features, averaged (efficient-probing's ``SpatialAttention2d``).

    Parameter names as the reference's (``conv1``, ``bn``, ``conv2``; 1x1 convolutions), so its state dict
    loads unchanged. A 1x1 convolution acts on each location alone, so tokens need no grid.

    Args:
        dim: ``C``.
        hidden_dim: ``C'`` (efficient-probing's ``s3_dim``); None means ``dim`` (``out_features``).
    """

    components = Components(
        "DOLG",
        "P",
        phi_k="softplus(w⊤ ReLU(BN(W1 X)))",
        attention="s / ‖s‖₁",
        phi_v="BN(W1 X) / ‖·‖₂",
        phi_u="(‖s‖₁/p) Z",
        source="Yang et al., ICCV 2021",
    )

    def __init__(self, dim: int, hidden_dim: int | None = None):
        super().__init__()
        hidden_dim = hidden_dim or dim
        self.out_features = hidden_dim
        self.conv1 = nn.Conv2d(dim, hidden_dim, 1)
        self.bn = nn.BatchNorm2d(hidden_dim, eps=1e-5, momentum=0.1)
        self.conv2 = nn.Conv2d(hidden_dim, 1, 1)
        for conv in (self.conv1, self.conv2):  # ResNet-style, as DOLG's ``init_weights``
            nn.init.normal_(conv.weight, std=math.sqrt(2.0 / conv.out_channels))

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        tokens, grid = as_tokens(x)
        B, N, C = tokens.shape  # batch, locations, channels
        columns = tokens.transpose(1, 2).unsqueeze(-1)  # (B, C, N, 1): locations as a column
        local = self.bn(self.conv1(columns))  # F: (B, C', N, 1)
        score = F.softplus(self.conv2(F.relu(local)), beta=1, threshold=20)  # s: (B, 1, N, 1)
        pooled = (score * F.normalize(local, p=2, dim=1)).mean(dim=(2, 3))  # (B, C')
        if return_attention:
            attention = score.view(B, 1, N)  # (B, 1, N)
            attention = attention / attention.sum(dim=-1, keepdim=True).clamp_min(1e-12)
            return pooled, attention_layout(attention, grid)
        return pooled

    def load_reference_state_dict(self, state_dict: dict) -> None:
        """Load efficient-probing's ``SpatialAttention2d(with_aspp=False)`` weights (the same names)."""
        self.load_state_dict(state_dict)


__all__ = ["DOLGPool"]
