"""DINO's projection head and the multi-crop wrapper that runs a backbone once per crop resolution.

DINO: Caron et al., ICCV 2021 (``facebookresearch/dino``, ``vision_transformer.py::DINOHead`` and
``utils.py::MultiCropWrapper``, Apache-2.0). The last layer is weight-normalised with
``torch.nn.utils.parametrizations.weight_norm`` (the replacement of the deprecated
``nn.utils.weight_norm``), so its state-dict keys are ``last_layer.parametrizations.weight.original0``
(the norm ``g``) and ``...original1`` (the direction ``v``) instead of DINO's ``weight_g``/``weight_v``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


class DINOHead(nn.Module):
    """``h(x) = W_last normalize(MLP(x))`` with ``W_last = g * v / ||v||`` row-wise.

    The MLP has ``nlayers`` linear layers (GELU between them, optional BatchNorm) ending at
    ``bottleneck_dim``; its output is L2-normalised, then the weight-normalised last layer maps it to
    ``out_dim`` logits. With ``norm_last_layer`` the norms ``g`` are fixed to 1 (DINO's default; the
    SimPool ViT-S recipe trains them).

    Args:
        in_dim: the backbone's pooled width (``model.num_features``).
        out_dim: ``K`` (65536; 60000 for ResNet-50).
        use_bn: BatchNorm after each hidden linear layer (the ResNet-50 recipe).
        norm_last_layer: keep ``g = 1`` (not trained).
        nlayers: linear layers of the MLP (3).
        hidden_dim: width of its hidden layers (2048).
        bottleneck_dim: width before the last layer (256).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 65536,
        use_bn: bool = False,
        norm_last_layer: bool = True,
        nlayers: int = 3,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
    ):
        super().__init__()
        if nlayers < 1:
            raise ValueError(f"nlayers must be at least 1, got {nlayers}")
        if nlayers == 1:
            self.mlp = nn.Linear(in_dim, bottleneck_dim)
        else:
            layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim)]
            for _ in range(nlayers - 2):
                layers += [nn.BatchNorm1d(hidden_dim)] if use_bn else []
                layers += [nn.GELU(), nn.Linear(hidden_dim, hidden_dim)]
            layers += [nn.BatchNorm1d(hidden_dim)] if use_bn else []
            layers += [nn.GELU(), nn.Linear(hidden_dim, bottleneck_dim)]
            self.mlp = nn.Sequential(*layers)
        self.apply(self._init_weights)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        norms = self.last_layer.parametrizations.weight.original0  # (out_dim, 1): g
        with torch.no_grad():
            norms.fill_(1.0)
        norms.requires_grad = not norm_last_layer

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_dim) -> (B, out_dim)`` logits in float32: the MLP follows the caller's autocast, the
        normalisation and the last layer run in float32 with autocast off (the loss's precision needs them)."""
        x = self.mlp(x)  # (B, in_dim) -> (B, bottleneck_dim)
        with torch.autocast(x.device.type, enabled=False):
            x = F.normalize(x.float(), dim=-1, p=2)  # (B, bottleneck_dim), unit rows
            return self.last_layer(x)  # (B, out_dim)


class MultiCropWrapper(nn.Module):
    """``backbone`` then ``head`` over a list of crops, one backbone pass per run of equal resolutions.

    Crops of the same size are concatenated along the batch (the 2 global crops, then the local
    ones), so the outputs are view-major: ``(V * B, K)`` for ``V`` crops of ``B`` images. The backbone
    must return pooled features ``(B, D)`` (a timm model built with ``num_classes=0``); ViTs need
    ``dynamic_img_size=True`` for the 96 px local crops.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, crops: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        if isinstance(crops, torch.Tensor):
            crops = [crops]
        sizes = torch.tensor([crop.shape[-1] for crop in crops])
        ends = torch.cumsum(torch.unique_consecutive(sizes, return_counts=True)[1], 0).tolist()
        features, start = [], 0
        for end in ends:
            features.append(self.backbone(torch.cat(crops[start:end])))  # (n * B, D) for n crops of one size
            start = end
        return self.head(torch.cat(features))  # (V * B, D) -> (V * B, K)
