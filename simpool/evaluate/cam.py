"""Class activation maps for GAP CNNs, as wsolevaluation defines them (``wsol/resnet.py : ResNetCam``).

Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016:
``CAM_y = mean_c W_fc[y, c] F_c`` over the last feature map ``F`` (a channel mean, no ReLU), for the
ground-truth class ``y`` (the GT-known setting).
"""

from __future__ import annotations

import torch
from torch import nn


def class_activation_maps(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """CAMs ``(B, h, w)`` of a timm CNN whose classifier follows global average pooling directly.

    Args:
        model: a timm CNN with timm's own GAP (ResNet), ``forward_features -> (B, C, h, w)``.
        images: ``(B, 3, H, W)``.
        labels: ``(B,)`` class indices.
    """
    with torch.no_grad():
        features = model.forward_features(images)  # (B, C, h, w)
        if features.ndim != 4:
            raise ValueError(f"CAM needs a CNN feature map (B, C, h, w); {type(model).__name__} gives {features.shape}")
        classifier = model.get_classifier()
        weight = getattr(classifier, "weight", None)
        if weight is None or weight.ndim != 2 or weight.shape[1] != features.shape[1]:
            raise ValueError(f"{type(model).__name__} has no linear classifier right after pooling; CAM is undefined")
        class_weights = weight[labels.to(weight.device)]  # (B, C)
        return (class_weights[:, :, None, None] * features).mean(dim=1)  # (B, h, w)
