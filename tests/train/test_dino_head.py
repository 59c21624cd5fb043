"""DINOHead, the multi-crop wrapper and the multi-crop augmentation."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from simpool.train.dino.data import MultiCropTransform, collate_crops
from simpool.train.dino.head import DINOHead, MultiCropWrapper


def test_head_shapes_and_unit_norm_last_layer():
    head = DINOHead(8, out_dim=11, hidden_dim=16, bottleneck_dim=4, nlayers=3)
    assert head(torch.randn(5, 8)).shape == (5, 11)
    last = head.last_layer
    g = last.parametrizations.weight.original0
    assert not g.requires_grad  # norm_last_layer: g fixed to 1
    torch.testing.assert_close(last.weight.norm(dim=1), torch.ones(11))  # every row of W has norm g = 1
    # the input of the last layer is L2-normalised, so every logit lies in [-1, 1]
    assert head(torch.randn(5, 8) * 100).abs().max() <= 1 + 1e-5


def test_head_with_batchnorm_and_trainable_norms():
    head = DINOHead(8, out_dim=7, use_bn=True, norm_last_layer=False, hidden_dim=16, bottleneck_dim=4)
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in head.modules()) == 2
    assert head.last_layer.parametrizations.weight.original0.requires_grad
    assert head(torch.randn(3, 8)).shape == (3, 7)
    with pytest.raises(ValueError, match="nlayers"):
        DINOHead(8, nlayers=0)


def test_wrapper_equals_one_pass_per_crop(tiny_vit):
    torch.manual_seed(0)
    model = MultiCropWrapper(
        tiny_vit(num_classes=0, dynamic_img_size=True), DINOHead(32, out_dim=9, hidden_dim=16, bottleneck_dim=4)
    ).eval()
    crops = [torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32), torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)]
    out = model(crops)
    assert out.shape == (8, 9)  # view-major (V * B, K)
    separate = torch.cat([model.head(model.backbone(crop)) for crop in crops])
    torch.testing.assert_close(out, separate, rtol=1e-4, atol=1e-5)


def test_multicrop_shapes_and_collate():
    transform = MultiCropTransform((0.25, 1.0), (0.05, 0.25), local_crops_number=6, global_size=32, local_size=16)
    assert transform.num_crops == 8
    image = Image.new("RGB", (40, 50), (120, 30, 200))
    crops = transform(image)
    assert [tuple(c.shape) for c in crops] == [(3, 32, 32)] * 2 + [(3, 16, 16)] * 6
    batch, targets, skipped = collate_crops([(crops, 1), None, (transform(image), 0)])
    assert [tuple(c.shape) for c in batch] == [(2, 3, 32, 32)] * 2 + [(2, 3, 16, 16)] * 6
    assert targets.tolist() == [1, 0] and skipped == 1


def test_multicrop_rejects_bad_scales():
    with pytest.raises(ValueError, match="local_crops_scale"):
        MultiCropTransform(local_crops_scale=(0.5, 0.1))
    with pytest.raises(ValueError, match="local_crops_number"):
        MultiCropTransform(local_crops_number=-1)
