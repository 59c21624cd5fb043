"""DINOHead and the multi-crop wrapper."""

from __future__ import annotations

import pytest
import torch

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


def test_the_last_layer_runs_in_float32_under_autocast():
    torch.manual_seed(0)
    head = DINOHead(16, out_dim=64, hidden_dim=32, bottleneck_dim=8)
    x = torch.randn(4, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = head(x)  # (4, 64)
        hidden = head.mlp(x)  # (4, 8): the MLP follows autocast (bf16)
    weight = head.last_layer.weight.float()  # (64, 8): g * v / ||v||
    expected = torch.nn.functional.normalize(hidden.float(), dim=-1) @ weight.T  # float32 throughout
    assert hidden.dtype == torch.bfloat16 and logits.dtype == torch.float32
    torch.testing.assert_close(logits, expected, rtol=1e-6, atol=1e-7)
